"""Pulling 1-minute candles for whole games, concurrently and within the rate limit (no Dagster here).

The candle window of a market, in Unix seconds, inclusive at both ends as Kalshi's `start_ts` / `end_ts`
are (a candle is returned when its `end_period_ts` lies in the window):

    start = open_time                                 (or max(open_time, start_ts) for incremental pulls)
    end   = min(floor_to_minute(now), ceil_to_minute(close_time), ceil_to_minute(settlement_ts))

A candle covers `(end_period_ts - 60, end_period_ts]`, so the trades of the last partial minute before a
mid-minute `close_time` live in the candle that ends *after* it: the window ends at the close rounded up.
`close_time` moves to the actual close once the result is known (Kalshi closes game markets early), so
a finished game's window ends with its closing minute; an open market's window ends at the last completed
minute.
The two markets of a game are pulled together with one batch request (`GET /markets/candlesticks`, the
client chunks it under 100 tickers / 10,000 candles) over the union of their windows; archived markets
(settled before the historical cutoff, or no longer found live) use
`GET /historical/markets/{ticker}/candlesticks`. Games run concurrently (`asyncio.gather`); the client's
token bucket keeps the whole process within the tier's rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from kalshi_pipeline.kalshi import KalshiClient, KalshiNotFound
from kalshi_pipeline.kalshi.candles import CandlePayloads
from kalshi_pipeline.kalshi.live_candles import period_end
from kalshi_pipeline.warehouse import unix_seconds
from kalshi_pipeline.warehouse.schema import CANDLESTICKS_RAW

PERIOD_INTERVAL = 1


@dataclass(frozen=True)
class MarketWindow:
    """One market to pull and the window of candle end times wanted, in Unix seconds (inclusive)."""

    ticker: str
    event_ticker: str
    series_ticker: str
    game_date: date
    start_ts: int
    end_ts: int
    archived: bool

    @property
    def empty(self) -> bool:
        """Whether the window holds no candle end time."""
        return self.end_ts < self.start_ts


@dataclass(frozen=True)
class PulledMarket:
    """One market's pulled candles with the window they were pulled for.

    The candles are held as the client read them (`CandlePayloads`: each candle's JSON text as received in
    one Arrow array, end times in a numpy array), so a chunk of pulled games holds a few buffers per
    market, not a Python object per candle.
    """

    window: MarketWindow
    candles: CandlePayloads

    def __len__(self) -> int:
        return len(self.candles)


@dataclass
class GamePull:
    """The candles pulled for one game, with the windows they cover."""

    event_ticker: str
    windows: list[MarketWindow]
    #: Each market's candles as received, with its window.
    blocks: list[PulledMarket] = field(default_factory=list)
    fell_back_to_historical: list[str] = field(default_factory=list)

    @property
    def candles(self) -> int:
        """How many candles were pulled."""
        return sum(len(b) for b in self.blocks)


def market_window(
    market: Mapping[str, Any], *, now_ts: int, cutoff_ts: int, start_ts: int | None = None
) -> MarketWindow:
    """Compute a market's candle window from its `kalshi.markets` row (see the module docstring)."""
    open_ts = unix_seconds(market.get("open_time")) or 0
    ends = [now_ts // 60 * 60]
    for key in ("close_time", "settlement_ts"):
        ts = unix_seconds(market.get(key))
        if ts is not None:
            ends.append(period_end(int(ts) * 1000))  # the candle holding the last partial minute
    end = min(ends)
    start = open_ts if start_ts is None else max(open_ts, int(start_ts))
    settled = unix_seconds(market.get("settlement_ts"))
    archived = market.get("source") == "historical" or (settled is not None and settled < cutoff_ts)
    return MarketWindow(
        ticker=str(market["ticker"]),
        event_ticker=str(market["event_ticker"]),
        series_ticker=str(market["series_ticker"]),
        game_date=market["game_date"],
        start_ts=int(start),
        end_ts=int(end),
        archived=bool(archived),
    )


async def pull_game(client: KalshiClient, windows: Sequence[MarketWindow]) -> GamePull:
    """Pull every candle of one game's markets: one batch for live markets, historical per market."""
    windows = [w for w in windows if not w.empty]
    pull = GamePull(event_ticker=windows[0].event_ticker if windows else "", windows=list(windows))
    live = [w for w in windows if not w.archived]
    archived = [w for w in windows if w.archived]
    if live:
        try:
            batch = await client.get_candle_payloads_batch(
                [w.ticker for w in live],
                min(w.start_ts for w in live),
                max(w.end_ts for w in live),
                period_interval=PERIOD_INTERVAL,
            )
        except KalshiNotFound:
            # Kalshi answers 404 for the whole batch when one market has gone; go market by market.
            batch = None
            for got in await asyncio.gather(*(_one_market(client, w) for w in live)):
                pull.blocks.append(PulledMarket(*got))
        if batch is not None:
            for w in live:
                got = batch.get(w.ticker)
                if got is not None and len(got):
                    pull.blocks.append(PulledMarket(w, got))
                elif w.end_ts - w.start_ts >= 3600:
                    # Nothing live over an hour or more of a market's life: it may have been archived
                    # since kalshi.markets was written (a stale row without settlement_ts), so look there.
                    archived.append(w)
                    pull.fell_back_to_historical.append(w.ticker)

    async def historical(w: MarketWindow) -> tuple[MarketWindow, CandlePayloads] | None:
        try:
            candles = await client.get_historical_candle_payloads(
                w.ticker, w.start_ts, w.end_ts, period_interval=PERIOD_INTERVAL
            )
        except KalshiNotFound:
            if not w.archived:
                return None  # a live market that simply had no activity yet
            raise
        return w, candles

    for got in await asyncio.gather(*(historical(w) for w in archived)):
        if got is not None:
            pull.blocks.append(PulledMarket(*got))
    return pull


async def _one_market(client: KalshiClient, w: MarketWindow) -> tuple[MarketWindow, CandlePayloads]:
    """Pull one market live, or under /historical when the live endpoint no longer knows it."""
    try:
        candles = await client.get_market_candle_payloads(
            w.series_ticker, w.ticker, w.start_ts, w.end_ts, period_interval=PERIOD_INTERVAL
        )
    except KalshiNotFound:
        candles = await client.get_historical_candle_payloads(
            w.ticker, w.start_ts, w.end_ts, period_interval=PERIOD_INTERVAL
        )
    return w, candles


async def pull_games(
    client: KalshiClient, windows_by_game: dict[str, list[MarketWindow]]
) -> list[GamePull | BaseException]:
    """Pull many games concurrently (the client's rate limiter paces the requests).

    Returns one entry per game in event-ticker order: its pull, or the error that failed it (the other
    games still complete, so one game's failure does not cost the others).
    """
    return list(
        await asyncio.gather(
            *(pull_game(client, ws) for _, ws in sorted(windows_by_game.items())),
            return_exceptions=True,
        )
    )


#: Arrow types of the `kalshi.candlesticks_raw` columns as `raw_table` builds them.
RAW_ARROW_SCHEMA = pa.schema(
    [
        ("ticker", pa.string()),
        ("event_ticker", pa.string()),
        ("series_ticker", pa.string()),
        ("game_date", pa.date32()),
        ("period_interval", pa.int32()),
        ("end_period_ts", pa.timestamp("s", tz="UTC")),
        ("source", pa.string()),
        ("payload", pa.string()),
        ("ingested_at", pa.timestamp("s", tz="UTC")),
    ]
)
assert tuple(RAW_ARROW_SCHEMA.names) == CANDLESTICKS_RAW.column_names


def raw_table(blocks: Sequence[PulledMarket], ingested_at_ts: int) -> pa.Table:
    """Turn pulled candles into `kalshi.candlesticks_raw` rows as an Arrow table, payloads as JSON text.

    Columns are built whole: every per-market column is a repeat of its market's value, the payloads are
    the pulled text arrays concatenated. A market given twice keeps one candle per end time (the later
    block wins).
    """
    by_ticker: dict[str, PulledMarket] = {}
    for block in blocks:
        if not len(block):
            continue
        earlier = by_ticker.get(block.window.ticker)
        if earlier is not None:
            got = block.candles
            block = PulledMarket(
                block.window,
                CandlePayloads.merged(
                    [earlier.candles, got],
                    ticker=got.ticker,
                    period_interval=got.period_interval,
                    historical=got.historical,
                ),
            )
        by_ticker[block.window.ticker] = block
    picked = list(by_ticker.values())
    counts = np.array([len(b) for b in picked], dtype=np.int64)
    n = int(counts.sum())

    def repeated(values: list[Any], arrow_type: pa.DataType) -> pa.Array:
        return pa.array(values, arrow_type).take(
            pa.array(np.repeat(np.arange(len(values)), counts))
        )

    def utc(seconds: np.ndarray) -> pa.Array:
        return (
            pa.array(seconds, pa.int64()).cast(pa.timestamp("s")).cast(pa.timestamp("s", tz="UTC"))
        )

    windows = [b.window for b in picked]
    candles = [b.candles for b in picked]
    ends = np.concatenate([c.ends for c in candles]) if candles else np.zeros(0, np.int64)
    payloads = pa.concat_arrays([c.payloads for c in candles] or [pa.array([], pa.string())])
    columns = [
        repeated([w.ticker for w in windows], pa.string()),
        repeated([w.event_ticker for w in windows], pa.string()),
        repeated([w.series_ticker for w in windows], pa.string()),
        repeated([w.game_date for w in windows], pa.date32()),
        repeated([c.period_interval for c in candles], pa.int32()),
        utc(ends.astype(np.int64, copy=False)),
        repeated(["historical" if c.historical else "live" for c in candles], pa.string()),
        payloads,
        utc(np.full(n, ingested_at_ts, dtype=np.int64)),
    ]
    return pa.Table.from_arrays(columns, schema=RAW_ARROW_SCHEMA)
