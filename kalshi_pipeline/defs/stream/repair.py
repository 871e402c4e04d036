"""Repairing a stream's gaps from REST: the trades of every outage window and the silent-channel check.

A gap (a disconnect, a seq jump, a terminal error 10/25, a channel resubscribed because it went silent)
means the stream missed trades of some markets from the gap's start until the channel was subscribed again.
`GapLedger` keeps those windows; once the channel is subscribed again, `backfill_trades` fetches the
windows' trades over REST (`GET /markets/trades` with `min_ts`, `/historical/trades` for markets behind the
historical cutoff) and returns the ones the stream did not deliver, so `kalshi.trades` has no hole. The
minutes of those trades are handed back too: their candles are replaced by REST candles like any other
minute a gap corrupted.

`rest_has_newer_trades` is the channel watchdog's question: did a market of ours trade after the channel's
last message? A trade or ticker channel silent for long while REST answers yes is dead on a live socket.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kalshi_pipeline.kalshi.client import KalshiClient
from kalshi_pipeline.kalshi.live_candles import CandleKey, period_end
from kalshi_pipeline.kalshi.models import Trade
from kalshi_pipeline.kalshi.parsing import unix_ms
from kalshi_pipeline.kalshi.ws import StreamEvent

__all__ = [
    "GapLedger",
    "GapWindow",
    "TradeBackfill",
    "backfill_trades",
    "rest_has_newer_trades",
    "rest_trade_row",
]

#: The channels whose gaps lose trades (the orderbook resyncs itself, lifecycle is polled).
TRADE_GAP_CHANNELS = frozenset({"ticker", "trade"})


@dataclass(frozen=True)
class GapWindow:
    """Markets whose trades may be missing since `since_ms` (exchange Unix ms; None = since the start)."""

    tickers: frozenset[str]
    since_ms: int | None


class GapLedger:
    """The open gap windows of one stream run, merged per market (the earliest start wins)."""

    def __init__(self) -> None:
        """Start with no gaps."""
        self._since: dict[str, int | None] = {}

    def __len__(self) -> int:
        return len(self._since)

    def add(self, event: StreamEvent, all_tickers: Collection[str]) -> None:
        """Record a gap event of the ticker or trade channel (its markets, or all of ours when it names none)."""
        if event.kind != "gap" or (
            event.channel is not None and event.channel not in TRADE_GAP_CHANNELS
        ):
            return
        tickers = [t for t in event.market_tickers if t in all_tickers] or list(all_tickers)
        for ticker in tickers:
            if ticker not in self._since:
                self._since[ticker] = event.since_ms
                continue
            known = self._since[ticker]
            if known is not None and (event.since_ms is None or event.since_ms < known):
                self._since[ticker] = event.since_ms

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
    archived: Collection[str] = (),
) -> TradeBackfill:
    """Fetch every trade of the windows' markets since each window's start; keep those not yet seen.

    Trades are fetched up to now (no `max_ts`): the channel is subscribed again when this runs, so
    every later trade arrives on the stream, and one that arrives on both is stored once (by trade id).

    Args:
        client: The REST client.
        windows: The gap windows to repair.
        seen_trade_ids: Ids of the trades the stream delivered.
        archived: Markets behind the historical cutoff (read from `/historical/trades`).
    """
    missed: list[Trade] = []
    minutes: set[CandleKey] = set()
    fetched = 0
    for window in windows:
        min_ts = None if window.since_ms is None else window.since_ms // 1000
        for ticker in sorted(window.tickers):
            trades = (
                client.iter_historical_trades(ticker, min_ts=min_ts)
                if ticker in archived
                else client.iter_trades(ticker, min_ts=min_ts)
            )
            async for trade in trades:
                fetched += 1
                if trade.trade_id in seen_trade_ids:
                    continue
                missed.append(trade)
                minutes.add((ticker, period_end(unix_ms(trade.created_time))))
    return TradeBackfill(missed, minutes, fetched)


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
