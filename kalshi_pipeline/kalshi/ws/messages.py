"""Kalshi WebSocket messages: typed models of the server frames, stream events, and `parse_message`.

Every message carries the exchange time (`ts_ms`) and the local receipt time (`received_ms`), both Unix
milliseconds. The exchange time is the payload's own time (`ts_ms`, `ts`, `time`) or else the envelope's
`sending_ts_ms` (for lifecycle messages, the settlement or determination instant); it is never taken from a
schedule field such as a lifecycle message's `open_ts` / `close_ts` (a market's schedule, often days
ahead), so a lifecycle message may have no `ts_ms`. Prices and counts are exact `Decimal`s read by the same strict fixed-point parser as the REST
models (`kalshi_pipeline.kalshi.parsing`): a bare JSON number in a `*_dollars` / `*_fp` field is refused.
A `StreamEvent` describes the connection rather than the market (connect, disconnect, gap, resync, error).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from kalshi_pipeline.kalshi.errors import KalshiProtocolError, WsMessageError
from kalshi_pipeline.kalshi.parsing import Fields, parse_fixed, parse_timestamp, unix_ms

__all__ = [
    "ControlMessage",
    "EventKind",
    "LifecycleMessage",
    "OrderbookDelta",
    "OrderbookSnapshot",
    "StreamEvent",
    "StreamItem",
    "TickerMessage",
    "TradeMessage",
    "UnknownMessage",
    "WsMessage",
    "exchange_ts_ms",
    "parse_message",
]

#: Frame types that answer a command rather than carry market data.
CONTROL_TYPES: frozenset[str] = frozenset({"subscribed", "ok", "unsubscribed", "error"})


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _rfc3339_ms(value: Any) -> int | None:
    try:
        return unix_ms(parse_timestamp(value))
    except KalshiProtocolError:
        return None


def exchange_ts_ms(msg: Mapping[str, Any]) -> int | None:
    """The exchange time of a payload in Unix ms: `ts_ms`, else `ts` (seconds or RFC3339), else `time`."""
    ts_ms = _int(msg.get("ts_ms"))
    if ts_ms is not None:
        return ts_ms
    ts = msg.get("ts")
    if isinstance(ts, str):
        parsed = _rfc3339_ms(ts)
        if parsed is not None:
            return parsed
    ts_s = _int(ts)
    if ts_s is not None:
        return ts_s * 1000
    return _rfc3339_ms(msg.get("time"))


@dataclass(frozen=True, slots=True)
class WsMessage:
    """Fields shared by every server frame: type, sid, seq (when sequenced), exchange and receipt times.

    `sending_ts_ms` is the envelope's send time (Kalshi's 2026 protocol), None when the frame lacks it.
    """

    type: str
    sid: int | None
    seq: int | None
    ts_ms: int | None
    received_ms: int
    raw: dict[str, Any] = field(repr=False, compare=False)
    sending_ts_ms: int | None = None


@dataclass(frozen=True, slots=True)
class TickerMessage(WsMessage):
    """A `ticker` update: last price, best yes bid/ask, volume and open interest of one market."""

    market_ticker: str = ""
    market_id: str | None = None
    price: Decimal | None = None
    yes_bid: Decimal | None = None
    yes_ask: Decimal | None = None
    volume: Decimal | None = None
    open_interest: Decimal | None = None
    yes_bid_size: Decimal | None = None
    yes_ask_size: Decimal | None = None
    last_trade_size: Decimal | None = None
    dollar_volume: int | None = None
    dollar_open_interest: int | None = None


@dataclass(frozen=True, slots=True)
class TradeMessage(WsMessage):
    """A public `trade`: price of YES and NO legs, contracts and taker side."""

    trade_id: str = ""
    market_ticker: str = ""
    yes_price: Decimal | None = None
    no_price: Decimal | None = None
    count: Decimal = Decimal(0)
    taker_side: str | None = None
    taker_outcome_side: str | None = None
    taker_book_side: str | None = None
    is_block_trade: bool = False


@dataclass(frozen=True, slots=True)
class OrderbookSnapshot(WsMessage):
    """A full orderbook: YES and NO bid levels `(price, size)` ascending by price (empty sides are `()`)."""

    market_ticker: str = ""
    market_id: str | None = None
    yes: tuple[tuple[Decimal, Decimal], ...] = ()
    no: tuple[tuple[Decimal, Decimal], ...] = ()


@dataclass(frozen=True, slots=True)
class OrderbookDelta(WsMessage):
    """A signed size change of one price level on one side of an orderbook."""

    market_ticker: str = ""
    market_id: str | None = None
    price: Decimal = Decimal(0)
    delta: Decimal = Decimal(0)
    side: str = "yes"


@dataclass(frozen=True, slots=True)
class LifecycleMessage(WsMessage):
    """A `market_lifecycle_v2` (or `event_lifecycle`) event; `event_type` e.g. `settled`, `determined`.

    `open_ts` / `close_ts` are the market's schedule (Unix s), not the time of the message.
    """

    market_ticker: str | None = None
    event_ticker: str | None = None
    event_type: str | None = None
    result: str | None = None
    settlement_value: Decimal | None = None
    open_ts: int | None = None
    close_ts: int | None = None
    settled_ts: int | None = None
    determination_ts: int | None = None


@dataclass(frozen=True, slots=True)
class ControlMessage(WsMessage):
    """A command answer: `subscribed`, `ok`, `unsubscribed` or `error` (`code`, `message` for errors)."""

    id: int | None = None
    channel: str | None = None
    code: int | None = None
    message: str | None = None
    body: Any = None


@dataclass(frozen=True, slots=True)
class UnknownMessage(WsMessage):
    """A frame of a type this client does not model (kept raw, never dropped silently)."""


EventKind = Literal[
    "connect", "disconnect", "gap", "resync", "error", "overflow", "heartbeat_timeout"
]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """Something that happened to the stream rather than the market (stored in `kalshi.stream_events`).

    Attributes:
        kind: connect, disconnect, gap, resync, error, overflow or heartbeat_timeout.
        at_ms: Local time of the event (Unix ms).
        connection: The connection number (1 for the first connect, +1 per reconnect).
        detail: One human-readable line.
        channel: The channel concerned, when one is.
        sid: The subscription id concerned, when one is.
        market_tickers: The markets whose data may be incomplete or were resynced.
        since_ms: For gaps, the exchange time of the last message known good (None = unknown).
        until_ms: For gaps, the exchange time from which data is complete again.
        code: Kalshi's WS error code for error frames.
    """

    kind: EventKind
    at_ms: int
    connection: int
    detail: str = ""
    channel: str | None = None
    sid: int | None = None
    market_tickers: tuple[str, ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None
    code: int | None = None


StreamItem = (
    TickerMessage
    | TradeMessage
    | OrderbookSnapshot
    | OrderbookDelta
    | LifecycleMessage
    | StreamEvent
)


"""What a consumer of `KalshiWebSocket` receives: market-data messages and stream events."""


def _levels(value: Any, key: str, where: str) -> tuple[tuple[Decimal, Decimal], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WsMessageError(f"{where}: field {key!r} is not a list of [price, size] levels")
    out: list[tuple[Decimal, Decimal]] = []
    for i, level in enumerate(value):
        if not isinstance(level, (list, tuple)) or len(level) != 2:
            raise WsMessageError(f"{where}: {key}[{i}] {level!r} is not a [price, size] pair")
        out.append(
            (
                parse_fixed(level[0], f"{key}[{i}][0]", where),
                parse_fixed(level[1], f"{key}[{i}][1]", where),
            )
        )
    return tuple(sorted(out))


def parse_message(data: str | bytes, *, received_ms: int | None = None) -> WsMessage:
    """Parse one server frame into its typed model.

    Args:
        data: The frame's text.
        received_ms: Local receipt time in Unix ms; defaults to now.

    Raises:
        WsMessageError: The frame is not JSON, not an object, lacks `type`, lacks a required field, or a field
            is malformed (a fixed-point field that is not a fixed-point string included); one line naming
            the frame type and the field.
    """
    received = int(time.time() * 1000) if received_ms is None else received_ms
    try:
        frame = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WsMessageError(f"frame is not JSON ({exc}): {str(data)[:120]!r}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise WsMessageError(f"frame has no 'type': {str(data)[:120]!r}")
    try:
        return _parse_frame(frame, received)
    except WsMessageError:
        raise
    except KalshiProtocolError as exc:  # a field parser's error, already one line naming the field
        raise WsMessageError(str(exc)) from None


def _parse_frame(frame: dict[str, Any], received: int) -> WsMessage:
    kind: str = frame["type"]
    msg = frame.get("msg")
    body: dict[str, Any] = msg if isinstance(msg, dict) else {}
    common: dict[str, Any] = {
        "type": kind,
        "sid": _int(frame.get("sid")),
        "seq": _int(frame.get("seq")),
        "received_ms": received,
        "raw": frame,
        "sending_ts_ms": _int(frame.get("sending_ts_ms")),
    }
    if kind in CONTROL_TYPES:
        sid = common["sid"] if common["sid"] is not None else _int(body.get("sid"))
        return ControlMessage(
            **{**common, "sid": sid},
            ts_ms=None,
            id=_int(frame.get("id")),
            channel=body.get("channel") if isinstance(body.get("channel"), str) else None,
            code=_int(body.get("code")) if kind == "error" else None,
            message=str(body.get("msg"))
            if kind == "error" and body.get("msg") is not None
            else None,
            body=msg,
        )
    if kind in ("ticker", "trade", "orderbook_snapshot", "orderbook_delta") and not isinstance(
        msg, dict
    ):
        raise WsMessageError(f"{kind} frame has no 'msg' object")
    ts_ms = exchange_ts_ms(body)
    if ts_ms is None:
        ts_ms = common["sending_ts_ms"]
    f = Fields.named(body, f"{kind} frame", "market_ticker", "event_ticker")
    if kind == "ticker":
        ticker = body.get("market_ticker")
        if not isinstance(ticker, str) or not ticker:
            raise WsMessageError("ticker frame has no market_ticker")
        return TickerMessage(
            **common,
            ts_ms=ts_ms,
            market_ticker=ticker,
            market_id=body.get("market_id"),
            price=f.fixed("price_dollars"),
            yes_bid=f.fixed("yes_bid_dollars"),
            yes_ask=f.fixed("yes_ask_dollars"),
            volume=f.fixed("volume_fp"),
            open_interest=f.fixed("open_interest_fp"),
            yes_bid_size=f.fixed("yes_bid_size_fp"),
            yes_ask_size=f.fixed("yes_ask_size_fp"),
            last_trade_size=f.fixed("last_trade_size_fp"),
            dollar_volume=_int(body.get("dollar_volume")),
            dollar_open_interest=_int(body.get("dollar_open_interest")),
        )
    if kind == "trade":
        ticker = body.get("market_ticker")
        count = f.fixed("count_fp")
        if not isinstance(ticker, str) or not ticker or count is None:
            raise WsMessageError("trade frame lacks market_ticker or count_fp")
        return TradeMessage(
            **common,
            ts_ms=ts_ms,
            trade_id=str(body.get("trade_id") or ""),
            market_ticker=ticker,
            yes_price=f.fixed("yes_price_dollars"),
            no_price=f.fixed("no_price_dollars"),
            count=count,
            taker_side=body.get("taker_side"),
            taker_outcome_side=body.get("taker_outcome_side"),
            taker_book_side=body.get("taker_book_side"),
            is_block_trade=bool(body.get("is_block_trade", False)),
        )
    if kind == "orderbook_snapshot":
        return OrderbookSnapshot(
            **common,
            ts_ms=ts_ms,
            market_ticker=str(body.get("market_ticker") or ""),
            market_id=body.get("market_id"),
            yes=_levels(body.get("yes_dollars_fp"), "yes_dollars_fp", f.where),
            no=_levels(body.get("no_dollars_fp"), "no_dollars_fp", f.where),
        )
    if kind == "orderbook_delta":
        price = f.fixed("price_dollars")
        delta = f.fixed("delta_fp")
        side = body.get("side")
        if price is None or delta is None or side not in ("yes", "no"):
            raise WsMessageError("orderbook_delta lacks price_dollars, delta_fp or side yes|no")
        return OrderbookDelta(
            **common,
            ts_ms=ts_ms,
            market_ticker=str(body.get("market_ticker") or ""),
            market_id=body.get("market_id"),
            price=price,
            delta=delta,
            side=side,
        )
    if kind in ("market_lifecycle_v2", "event_lifecycle"):
        return _lifecycle(kind, body, common, ts_ms, f)
    return UnknownMessage(**common, ts_ms=ts_ms)


def _lifecycle(
    kind: str, body: dict[str, Any], common: dict[str, Any], ts_ms: int | None, f: Fields
) -> LifecycleMessage:
    """A lifecycle frame.

    Without an exchange time, the instant of a settlement or determination (`settled_ts`,
    `determination_ts`, Unix s) stands in; `open_ts` / `close_ts` never do (they are the market's schedule,
    often days ahead, and a `created` message of another market carries them).
    """
    if ts_ms is None:
        for key in ("settled_ts", "determination_ts"):
            event_s = _int(body.get(key))
            if event_s is not None:
                ts_ms = event_s * 1000
                break
    extra = body.get("additional_metadata")
    event_ticker = body.get("event_ticker")
    if event_ticker is None and isinstance(extra, dict):
        event_ticker = extra.get("event_ticker")
    return LifecycleMessage(
        **common,
        ts_ms=ts_ms,
        market_ticker=body.get("market_ticker"),
        event_ticker=event_ticker,
        event_type=body.get("event_type") or ("event" if kind == "event_lifecycle" else None),
        result=body.get("result"),
        settlement_value=f.fixed("settlement_value"),
        open_ts=_int(body.get("open_ts")),
        close_ts=_int(body.get("close_ts")),
        settled_ts=_int(body.get("settled_ts")),
        determination_ts=_int(body.get("determination_ts")),
    )
