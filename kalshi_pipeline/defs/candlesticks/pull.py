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
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from kalshi_pipeline.kalshi import Candlestick, KalshiClient, KalshiNotFound
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


@dataclass
class GamePull:
    """The candles pulled for one game, with the windows they cover."""

    event_ticker: str
    windows: list[MarketWindow]
    candles: list[tuple[MarketWindow, Candlestick]] = field(default_factory=list)
    fell_back_to_historical: list[str] = field(default_factory=list)


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
            batch = await client.get_candlesticks_batch(
                [w.ticker for w in live],
                min(w.start_ts for w in live),
                max(w.end_ts for w in live),
                period_interval=PERIOD_INTERVAL,
            )
        except KalshiNotFound:
            # Kalshi answers 404 for the whole batch when one market has gone; go market by market.
            batch = None
            for got in await asyncio.gather(*(_one_market(client, w) for w in live)):
                pull.candles += got
        if batch is not None:
            for w in live:
                got = batch.get(w.ticker, [])
                if got:
                    pull.candles += [(w, c) for c in got]
                elif w.end_ts - w.start_ts >= 3600:
                    # Nothing live over an hour or more of a market's life: it may have been archived
                    # since kalshi.markets was written (a stale row without settlement_ts), so look there.
                    archived.append(w)
                    pull.fell_back_to_historical.append(w.ticker)

    async def historical(w: MarketWindow) -> list[tuple[MarketWindow, Candlestick]]:
        try:
            candles = await client.get_historical_candlesticks(
                w.ticker, w.start_ts, w.end_ts, period_interval=PERIOD_INTERVAL
            )
        except KalshiNotFound:
            if not w.archived:
                return []  # a live market that simply had no activity yet
            raise
        return [(w, c) for c in candles]

    for got in await asyncio.gather(*(historical(w) for w in archived)):
        pull.candles += got
    return pull


async def _one_market(
    client: KalshiClient, w: MarketWindow
) -> list[tuple[MarketWindow, Candlestick]]:
    """Pull one market live, or under /historical when the live endpoint no longer knows it."""
    try:
        candles = await client.get_market_candlesticks(
            w.series_ticker, w.ticker, w.start_ts, w.end_ts, period_interval=PERIOD_INTERVAL
        )
    except KalshiNotFound:
        candles = await client.get_historical_candlesticks(
            w.ticker, w.start_ts, w.end_ts, period_interval=PERIOD_INTERVAL
        )
    return [(w, c) for c in candles]


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


def raw_frame(pulls: Sequence[GamePull], ingested_at: pd.Timestamp) -> pd.DataFrame:
    """Turn pulled candles into `kalshi.candlesticks_raw` rows, payloads as JSON text as received."""
    pairs = [pair for pull in pulls for pair in pull.candles]
    if not pairs:
        return pd.DataFrame([], columns=list(CANDLESTICKS_RAW.column_names))
    windows = [w for w, _ in pairs]
    candles = [c for _, c in pairs]
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    ends = np.fromiter((c.end_period_ts for c in candles), dtype=np.int64, count=len(candles))
    df = pd.DataFrame(
        {
            "ticker": [w.ticker for w in windows],
            "event_ticker": [w.event_ticker for w in windows],
            "series_ticker": [w.series_ticker for w in windows],
            "game_date": [w.game_date for w in windows],
            "period_interval": [int(c.period_interval) for c in candles],
            "end_period_ts": pd.to_datetime(ends, unit="s", utc=True),
            "source": ["historical" if c.historical else "live" for c in candles],
            "payload": [dumps(c.raw) for c in candles],
            "ingested_at": ingested_at,
        },
        columns=list(CANDLESTICKS_RAW.column_names),
    )
    # A candle can only be returned once per market, but guard the primary key anyway.
    return df.drop_duplicates(["ticker", "period_interval", "end_period_ts"], keep="last")
