"""The rows a stream run writes: ticks, trades, stream events, stream-built candles and REST candles.

Plain functions from the WebSocket client's messages (and REST candles) to warehouse rows, plus the
stream-vs-REST candle comparison and the REST candle write that replaces a window's stream rows.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from kalshi_pipeline.defs.candlesticks.validation import PARSED_COLUMNS, to_table, validate_candles
from kalshi_pipeline.kalshi.candles import Candlestick
from kalshi_pipeline.kalshi.live_candles import LiveCandle
from kalshi_pipeline.kalshi.ws import StreamEvent, TickerMessage, TradeMessage
from kalshi_pipeline.warehouse import Warehouse
from kalshi_pipeline.warehouse.schema import (
    CANDLE_VALUE_COLUMNS,
    CANDLESTICKS,
    CANDLESTICKS_RAW,
    CANDLESTICKS_REJECTED,
)

__all__ = [
    "MarketInfo",
    "candle_row",
    "differing_fields",
    "event_row",
    "same_values",
    "tick_row",
    "trade_row",
    "write_rest_candles",
]


@dataclass(frozen=True)
class MarketInfo:
    """What a candle row needs to know about its market."""

    ticker: str
    event_ticker: str
    series_ticker: str
    game_date: date


def candle_row(candle: LiveCandle, info: MarketInfo) -> dict[str, Any]:
    """A `kalshi.candlesticks_ws` row for a stream-built candle."""
    row: dict[str, Any] = {
        "ticker": candle.ticker,
        "event_ticker": info.event_ticker,
        "series_ticker": info.series_ticker,
        "game_date": info.game_date,
        "period_interval": candle.period_interval,
        "end_period_ts": pd.Timestamp(candle.end_period_ts, unit="s", tz="UTC"),
    }
    for name in CANDLE_VALUE_COLUMNS:
        row[name] = getattr(candle, name)
    row["complete"] = candle.complete
    row["last_event_ts"] = (
        pd.Timestamp(candle.last_ts_ms, unit="ms", tz="UTC") if candle.last_ts_ms else None
    )
    return row


def _ts(ms: int | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")


def event_row(event: StreamEvent, run_id: str) -> dict[str, Any]:
    """A `kalshi.stream_events` row."""
    return {
        "event_id": str(uuid.uuid4()),
        "run_id": run_id,
        "event_at": _ts(event.at_ms),
        "kind": event.kind,
        "connection": event.connection,
        "channel": event.channel,
        "sid": event.sid,
        "market_tickers": ",".join(event.market_tickers) or None,
        "since_ts": _ts(event.since_ms),
        "until_ts": _ts(event.until_ms),
        "code": event.code,
        "detail": event.detail[:2000],
    }


def tick_row(msg: TickerMessage) -> dict[str, Any]:
    """A `kalshi.ticks` row."""
    return {
        "ticker": msg.market_ticker,
        "ts": _ts(msg.ts_ms if msg.ts_ms is not None else msg.received_ms),
        "received_at": _ts(msg.received_ms),
        "price": msg.price,
        "yes_bid": msg.yes_bid,
        "yes_ask": msg.yes_ask,
        "yes_bid_size": msg.yes_bid_size,
        "yes_ask_size": msg.yes_ask_size,
        "volume": msg.volume,
        "open_interest": msg.open_interest,
    }


def trade_row(msg: TradeMessage) -> dict[str, Any]:
    """A `kalshi.trades` row (`source = 'ws'`)."""
    return {
        "trade_id": msg.trade_id or f"ws:{msg.market_ticker}:{msg.ts_ms}:{msg.count}",
        "ticker": msg.market_ticker,
        "ts": _ts(msg.ts_ms if msg.ts_ms is not None else msg.received_ms),
        "received_at": _ts(msg.received_ms),
        "yes_price": msg.yes_price,
        "no_price": msg.no_price,
        "count": msg.count,
        "taker_outcome_side": msg.taker_outcome_side or msg.taker_side,
        "taker_book_side": msg.taker_book_side,
        "is_block_trade": msg.is_block_trade,
        "source": "ws",
    }


def same_values(live: LiveCandle, rest: Candlestick) -> bool:
    """Whether a stream-built candle equals the REST candle in every price and count field."""
    return not differing_fields(live, rest)


def differing_fields(live: LiveCandle, rest: Candlestick | None) -> str:
    """The fields where a stream-built candle and the REST candle differ, as `name ws->rest` (one line)."""
    if rest is None:
        return "REST has no candle for this minute"
    return ", ".join(
        f"{name} {getattr(live, name)}->{getattr(rest, name)}"
        for name in CANDLE_VALUE_COLUMNS
        if getattr(live, name) != getattr(rest, name)
    )


def write_rest_candles(
    warehouse: Warehouse,
    candles: dict[str, list[Candlestick]],
    infos: dict[str, MarketInfo],
    lo: int,
    hi: int,
) -> tuple[int, int]:
    """Replace the window `[lo, hi]` (Unix s) of these markets with REST candles; return (valid, rejected).

    Raw payloads go to `candlesticks_raw`, rows passing the candle asset's pandera rules to `candlesticks`
    (`source = 'live'`), the others to `candlesticks_rejected` with their payload; stream rows REST does
    not have are removed.
    """
    now = pd.Timestamp.now(tz="UTC").floor("s")
    raw_rows: list[dict[str, Any]] = []
    parsed: list[dict[str, Any]] = []
    for ticker, items in candles.items():
        info = infos[ticker]
        for c in items:
            base = {
                "ticker": ticker,
                "event_ticker": info.event_ticker,
                "series_ticker": info.series_ticker,
                "game_date": info.game_date,
                "period_interval": c.period_interval,
                "end_period_ts": c.end_period_ts,
                "source": "live",
            }
            base["payload"] = json.dumps(c.raw, separators=(",", ":"))
            raw_rows.append(base)
            parsed.append({**base, **{n: getattr(c, n) for n in CANDLE_VALUE_COLUMNS}})
    cols = list(PARSED_COLUMNS)
    frame = pd.DataFrame(parsed, columns=cols)
    valid, rejected = validate_candles(frame, set(infos)) if len(frame) else (frame, frame)

    tickers = sorted(candles)
    with warehouse.transaction() as tx:
        tx.delete_candles("candlesticks", tickers, lo, hi, period_interval=1, source="ws")
        if raw_rows:
            tx.upsert(
                "candlesticks_raw",
                to_table(pd.DataFrame(raw_rows), CANDLESTICKS_RAW.column_names, now),
            )
        if len(valid):
            tx.upsert("candlesticks", to_table(valid, CANDLESTICKS.column_names, now))
        if len(rejected):
            tx.upsert(
                "candlesticks_rejected", to_table(rejected, CANDLESTICKS_REJECTED.column_names, now)
            )
    return len(valid), len(rejected)
