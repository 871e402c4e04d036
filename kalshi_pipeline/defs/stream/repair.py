"""Repairing a stream's gaps from REST: the trades of every outage window and the silent-channel check.

A gap of the trade channel (a disconnect, a seq jump, a terminal error 10/25, a resubscription because it
went silent) means the stream missed trades of some markets from the gap's start until the channel was
subscribed again. `GapLedger` keeps those windows. A window starts at the newest trade the stream delivered
before the break (or the client's own start, when earlier), never at another channel's clock: a ticker or
lifecycle message may carry a later exchange time than a trade still on its way, and a start past that
trade would lose it. Before anything was delivered, the window starts at the stream's baseline (the newest
trade REST showed before subscribing). Once the channel is subscribed again, `backfill_trades` fetches the
windows' trades over REST (`GET /markets/trades` with `min_ts`, and `GET /historical/trades` for the part
of a window before the historical cutoff's `trades_created_ts`) and returns the ones the stream did not
deliver, so `kalshi.trades` has no hole. A trade the resumed stream delivers after REST did is stored once
(the trade id is the key). The minutes of the found trades are handed back too: their candles are replaced
by REST candles like any other minute a gap corrupted.

`rest_has_newer_trades` is the channel watchdog's question: did a market of ours trade after the channel's
last message? A trade or ticker channel silent for long while REST answers yes is dead on a live socket.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from kalshi_pipeline.kalshi.client import KalshiClient
from kalshi_pipeline.kalshi.live_candles import CandleKey, period_end
from kalshi_pipeline.kalshi.models import Trade
from kalshi_pipeline.kalshi.parsing import unix_ms
from kalshi_pipeline.kalshi.ws import StreamEvent, TradeMessage

__all__ = [
    "GapLedger",
    "GapWindow",
    "TradeBackfill",
    "backfill_trades",
    "newest_trade_ms",
    "rest_has_newer_trades",
    "rest_trade_row",
]

#: The channel whose gaps lose trades (a ticker gap loses quotes, repaired by REST candles; the orderbook
#: resyncs itself; lifecycle is polled).
TRADE_CHANNEL = "trade"


@dataclass(frozen=True)
class GapWindow:
    """Markets whose trades may be missing since `since_ms` (exchange Unix ms; None = since the start)."""

    tickers: frozenset[str]
    since_ms: int | None


class GapLedger:
    """The open trade gap windows of one stream run, merged per market (the earliest start wins).

    Attributes:
        baseline_ms: The exchange time of the newest trade REST showed before the stream subscribed (None
            when unknown or when there was none): a gap before any delivered trade starts there.
        newest_trade_ms: The exchange time of the newest trade the stream delivered so far.
    """

    def __init__(self) -> None:
        """Start with no gaps."""
        self._since: dict[str, int | None] = {}
        self.baseline_ms: int | None = None
        self.newest_trade_ms: int | None = None

    def __len__(self) -> int:
        return len(self._since)

    def delivered(self, trade: TradeMessage) -> None:
        """Note a trade the stream delivered (its time bounds where the next gap can start)."""
        if trade.ts_ms is not None:
            self.newest_trade_ms = max(self.newest_trade_ms or trade.ts_ms, trade.ts_ms)

    def start_of(self, event: StreamEvent) -> int | None:
        """Where a trade gap's lost trades can start: the earliest of the client's start and our newest trade.

        Every trade the stream did not deliver printed after the newest one it did (a sid delivers in
        order, and a new sid starts after the old one ended), unless the client reports an earlier start
        (messages it dropped while later ones got through). Before any delivered trade, the stream's
        baseline stands in for our newest trade.
        """
        ours = self.baseline_ms if self.newest_trade_ms is None else self.newest_trade_ms
        known = [t for t in (event.since_ms, ours) if t is not None]
        return min(known) if known else None

    def add(self, event: StreamEvent, all_tickers: Collection[str]) -> StreamEvent:
        """Record a gap of the trade channel (its markets, or all of ours when it names none).

        Returns the event with the window's start as recorded (other events unchanged), for the
        `stream_events` row.
        """
        if event.kind != "gap" or event.channel not in (None, TRADE_CHANNEL):
            return event
        event = replace(event, since_ms=self.start_of(event))
        tickers = [t for t in event.market_tickers if t in all_tickers] or list(all_tickers)
        for ticker in tickers:
            if ticker not in self._since:
                self._since[ticker] = event.since_ms
                continue
            known = self._since[ticker]
            if known is not None and (event.since_ms is None or event.since_ms < known):
                self._since[ticker] = event.since_ms
        return event

    def windows(self) -> list[GapWindow]:
        """The open windows, one per distinct start."""
        starts: dict[int | None, set[str]] = {}
        for ticker, since in self._since.items():
            starts.setdefault(since, set()).add(ticker)
        return [GapWindow(frozenset(t), since) for since, t in starts.items()]

    def close(self, windows: Iterable[GapWindow]) -> None:
        """Forget windows whose trades were fetched (a gap that reopened since keeps its newer start)."""
        for window in windows:
            for ticker in window.tickers:
                if self._since.get(ticker, -1) == window.since_ms:
                    del self._since[ticker]


def rest_trade_row(trade: Trade) -> dict[str, Any]:
    """A `kalshi.trades` row for a trade fetched over REST (`source = 'rest'`)."""
    return {
        "trade_id": trade.trade_id,
        "ticker": trade.ticker,
        "ts": pd.Timestamp(trade.created_time),
        "received_at": None,
        "yes_price": trade.yes_price_dollars,
        "no_price": trade.no_price_dollars,
        "count": trade.count_fp,
        "taker_outcome_side": trade.taker_outcome_side or trade.taker_side,
        "taker_book_side": trade.taker_book_side,
        "is_block_trade": trade.is_block_trade,
        "source": "rest",
    }


@dataclass(frozen=True)
class TradeBackfill:
    """What a backfill found: the trades the stream missed and the minutes they fall in."""

    trades: list[Trade]
    minutes: set[CandleKey]
    fetched: int


async def backfill_trades(
    client: KalshiClient,
    windows: Sequence[GapWindow],
    seen_trade_ids: Collection[str],
    trades_cutoff_ms: int | None = None,
) -> TradeBackfill:
    """Fetch every trade of the windows' markets since each window's start; keep those not yet seen.

    Trades are fetched up to now (no `max_ts`): the channel is subscribed again when this runs, so
    every later trade arrives on the stream, and one that arrives on both is stored once (by trade id).
    The part of a window before `trades_cutoff_ms` comes from `/historical/trades` (Kalshi serves older
    trades only there), the rest from `/markets/trades`.

    Args:
        client: The REST client.
        windows: The gap windows to repair.
        seen_trade_ids: Ids of the trades the stream delivered.
        trades_cutoff_ms: The historical cutoff's `trades_created_ts` (Unix ms; None = no historical part).
    """
    missed: list[Trade] = []
    minutes: set[CandleKey] = set()
    fetched = 0
    fresh_ids: set[str] = set()
    for window in windows:
        min_ts = None if window.since_ms is None else window.since_ms // 1000
        historical = trades_cutoff_ms is not None and (
            window.since_ms is None or window.since_ms < trades_cutoff_ms
        )
        for ticker in sorted(window.tickers):
            sources = [client.iter_trades(ticker, min_ts=min_ts)]
            if historical:
                sources.append(client.iter_historical_trades(ticker, min_ts=min_ts))
            for trades in sources:
                async for trade in trades:
                    fetched += 1
                    if trade.trade_id in seen_trade_ids or trade.trade_id in fresh_ids:
                        continue
                    fresh_ids.add(trade.trade_id)
                    missed.append(trade)
                    minutes.add((ticker, period_end(unix_ms(trade.created_time))))
    return TradeBackfill(missed, minutes, fetched)


async def newest_trade_ms(client: KalshiClient) -> int | None:
    """The exchange time of the exchange's newest trade (Unix ms), None when it has none.

    Asked before the stream subscribes, it bounds from below where the stream's delivery starts.
    """
    async for trade in client.iter_trades(page_size=1):
        return unix_ms(trade.created_time)
    return None


async def rest_has_newer_trades(
    client: KalshiClient, tickers: Iterable[str], after_ms: int, before_ms: int
) -> str | None:
    """The first of these markets REST shows a trade of in `(after_ms, before_ms]` (Unix ms), else None."""
    if before_ms <= after_ms:
        return None
    for ticker in sorted(tickers):
        async for trade in client.iter_trades(
            ticker, min_ts=after_ms // 1000, max_ts=before_ms // 1000, page_size=1
        ):
            if after_ms < unix_ms(trade.created_time) <= before_ms:
                return ticker
            break
    return None
