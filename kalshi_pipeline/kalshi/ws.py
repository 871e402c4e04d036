"""Kalshi WebSocket client: signed handshake, typed messages, seq tracking, resync and reconnects.

The client keeps one connection to `/trade-api/ws/v2` and one subscription (sid) per channel. Consumers
iterate over it and receive typed market-data messages (`TickerMessage`, `TradeMessage`,
`OrderbookSnapshot`, `OrderbookDelta`, `LifecycleMessage`) interleaved with `StreamEvent`s that describe the
connection (connect, disconnect, gap, resync, error). Every message carries the exchange time (`ts_ms`) and
the local receipt time (`received_ms`), both Unix milliseconds.

```python
ws = KalshiWebSocket.from_config(KalshiConfig.from_env())
await ws.subscribe(["ticker", "trade"], ["KXNBAGAME-25DEC19SASATL-ATL"])
async with ws:
    async for item in ws:
        ...
```

Gaps: a `seq` jump on a sid (or a dropped message under the "drop" overflow policy, or Kalshi's error 25)
emits a `StreamEvent(kind="gap")`. Orderbook sids are resynced here (`get_snapshot` for the sid's markets,
then a `resync` event); for trades and tickers the gap event names the markets and the exchange-time window
so the caller can backfill those minutes from REST. A reconnect re-signs the handshake, resets all sid/seq
trackers (they are per connection), resubscribes and emits a `gap` for the time the socket was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode

from kalshi_pipeline.kalshi.config import base_url_from_env
from kalshi_pipeline.kalshi.errors import (
    AUTH_HINT,
    KalshiAuthError,
    KalshiConfigError,
    KalshiError,
    KalshiProtocolError,
)
from kalshi_pipeline.kalshi.parsing import parse_timestamp

DEFAULT_WS_URL = "wss://external-api-ws.kalshi.com/trade-api/ws/v2"
WS_PATH = "/trade-api/ws/v2"

#: Market-data channels this client understands (others are rejected by `subscribe`).
CHANNELS: tuple[str, ...] = ("ticker", "trade", "orderbook_delta", "market_lifecycle_v2")
#: Channels that take no market filter (all markets of the exchange).
UNFILTERED_CHANNELS: frozenset[str] = frozenset({"market_lifecycle_v2"})

# Kalshi's documented hosts: the REST host does not always map to the WS host by a scheme swap.
_KNOWN_WS_HOSTS: dict[str, str] = {
    "external-api.kalshi.com": "wss://external-api-ws.kalshi.com",
    "external-api.demo.kalshi.co": "wss://external-api-ws.demo.kalshi.co",
    "api.elections.kalshi.com": "wss://api.elections.kalshi.com",
    "demo-api.kalshi.co": "wss://demo-api.kalshi.co",
}

Signer = Callable[[str, str], Mapping[str, str]]
"""A function `(method, path) -> headers` producing Kalshi's three `KALSHI-ACCESS-*` headers."""

OverflowPolicy = Literal["block", "drop"]


class KalshiWebSocketError(KalshiError):
    """The WebSocket stream cannot continue (handshake rejected, command refused, protocol violation)."""


class WsCommandError(KalshiWebSocketError):
    """Kalshi answered a command with an `error` frame; `.code` is Kalshi's numeric WS error code."""

    def __init__(self, code: int | None, message: str, *, command: str = "") -> None:
        super().__init__(f"{command or 'command'} failed: code {code}: {message}")
        self.code = code
        self.message = message
        self.command = command


# --------------------------------------------------------------------------------------------- URLs


def derive_ws_url(api_base_url: str) -> str:
    """Map a REST base URL to its WebSocket URL.

    Kalshi's hosts map by name (`https://external-api.kalshi.com/trade-api/v2` ->
    `wss://external-api-ws.kalshi.com/trade-api/ws/v2`); any other host (the local simulator) keeps host
    and port and swaps the scheme: `http://H:P/trade-api/v2` -> `ws://H:P/trade-api/ws/v2`.
    """
    parts = urlsplit(api_base_url.strip())
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise KalshiConfigError(
            f"cannot derive a WebSocket URL from {api_base_url!r}: not an http(s) URL"
        )
    host = (parts.hostname or "").lower()
    if host in _KNOWN_WS_HOSTS:
        return _KNOWN_WS_HOSTS[host] + WS_PATH
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    prefix = path[: -len("/trade-api/v2")] if path.endswith("/trade-api/v2") else ""
    return urlunsplit((scheme, parts.netloc, prefix + WS_PATH, "", ""))


def ws_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """Return `KALSHI_WS_URL`, else the URL derived from `KALSHI_API_BASE_URL`, else Kalshi production."""
    env = os.environ if environ is None else environ
    explicit = (env.get("KALSHI_WS_URL") or "").strip()
    if explicit:
        return validate_ws_url(explicit)
    return derive_ws_url(base_url_from_env(env))


def validate_ws_url(url: str) -> str:
    """Check that `url` is a ws(s) URL and return it without a trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https"):
        return derive_ws_url(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise KalshiConfigError(
            f"KALSHI_WS_URL {url!r} is not a ws:// or wss:// URL (example: {DEFAULT_WS_URL})"
        )
    return url.strip().rstrip("/")


# ------------------------------------------------------------------------------------------- models


def _dec(value: Any, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise KalshiWebSocketError(f"field {name!r} is a boolean, expected a fixed-point string")
    try:
        return Decimal(value) if isinstance(value, (str, int)) else Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        raise KalshiWebSocketError(f"field {name!r}={value!r} is not a decimal number") from None


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _rfc3339_ms(value: Any) -> int | None:
    try:
        return int(parse_timestamp(value).timestamp() * 1000)
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
    """Fields shared by every server frame: type, sid, seq (when sequenced), exchange and receipt times."""

    type: str
    sid: int | None
    seq: int | None
    ts_ms: int | None
    received_ms: int
    raw: dict[str, Any] = field(repr=False, compare=False)


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
    """A `market_lifecycle_v2` (or `event_lifecycle`) event; `event_type` e.g. `settled`, `determined`."""

    market_ticker: str | None = None
    event_ticker: str | None = None
    event_type: str | None = None
    result: str | None = None
    settlement_value: Decimal | None = None
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


def _levels(value: Any, name: str) -> tuple[tuple[Decimal, Decimal], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise KalshiWebSocketError(f"{name} is not a list of [price, size] levels")
    out: list[tuple[Decimal, Decimal]] = []
    for level in value:
        if not isinstance(level, (list, tuple)) or len(level) != 2:
            raise KalshiWebSocketError(f"{name} level {level!r} is not a [price, size] pair")
        price, size = _dec(level[0], name), _dec(level[1], name)
        if price is None or size is None:
            raise KalshiWebSocketError(f"{name} level {level!r} has an empty price or size")
        out.append((price, size))
    return tuple(sorted(out))


def parse_message(data: str | bytes, *, received_ms: int | None = None) -> WsMessage:
    """Parse one server frame into its typed model.

    Raises:
        KalshiWebSocketError: The frame is not JSON, not an object, lacks `type`, or a field is malformed.
    """
    received = int(time.time() * 1000) if received_ms is None else received_ms
    try:
        frame = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KalshiWebSocketError(f"frame is not JSON ({exc}): {str(data)[:120]!r}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise KalshiWebSocketError(f"frame has no 'type': {str(data)[:120]!r}")
    kind: str = frame["type"]
    msg = frame.get("msg")
    body: dict[str, Any] = msg if isinstance(msg, dict) else {}
    common: dict[str, Any] = {
        "type": kind,
        "sid": _int(frame.get("sid")),
        "seq": _int(frame.get("seq")),
        "received_ms": received,
        "raw": frame,
    }
    if kind in ("subscribed", "ok", "unsubscribed", "error"):
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
        raise KalshiWebSocketError(f"{kind} frame has no 'msg' object")
    ts_ms = exchange_ts_ms(body)
    if kind == "ticker":
        ticker = body.get("market_ticker")
        if not isinstance(ticker, str) or not ticker:
            raise KalshiWebSocketError("ticker frame has no market_ticker")
        return TickerMessage(
            **common,
            ts_ms=ts_ms,
            market_ticker=ticker,
            market_id=body.get("market_id"),
            price=_dec(body.get("price_dollars"), "price_dollars"),
            yes_bid=_dec(body.get("yes_bid_dollars"), "yes_bid_dollars"),
            yes_ask=_dec(body.get("yes_ask_dollars"), "yes_ask_dollars"),
            volume=_dec(body.get("volume_fp"), "volume_fp"),
            open_interest=_dec(body.get("open_interest_fp"), "open_interest_fp"),
            yes_bid_size=_dec(body.get("yes_bid_size_fp"), "yes_bid_size_fp"),
            yes_ask_size=_dec(body.get("yes_ask_size_fp"), "yes_ask_size_fp"),
            last_trade_size=_dec(body.get("last_trade_size_fp"), "last_trade_size_fp"),
            dollar_volume=_int(body.get("dollar_volume")),
            dollar_open_interest=_int(body.get("dollar_open_interest")),
        )
    if kind == "trade":
        ticker = body.get("market_ticker")
        count = _dec(body.get("count_fp"), "count_fp")
        if not isinstance(ticker, str) or not ticker or count is None:
            raise KalshiWebSocketError("trade frame lacks market_ticker or count_fp")
        return TradeMessage(
            **common,
            ts_ms=ts_ms,
            trade_id=str(body.get("trade_id") or ""),
            market_ticker=ticker,
            yes_price=_dec(body.get("yes_price_dollars"), "yes_price_dollars"),
            no_price=_dec(body.get("no_price_dollars"), "no_price_dollars"),
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
            yes=_levels(body.get("yes_dollars_fp"), "yes_dollars_fp"),
            no=_levels(body.get("no_dollars_fp"), "no_dollars_fp"),
        )
    if kind == "orderbook_delta":
        price = _dec(body.get("price_dollars"), "price_dollars")
        delta = _dec(body.get("delta_fp"), "delta_fp")
        side = body.get("side")
        if price is None or delta is None or side not in ("yes", "no"):
            raise KalshiWebSocketError(
                "orderbook_delta lacks price_dollars, delta_fp or side yes|no"
            )
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
        event_ms = None
        for key in ("settled_ts", "determination_ts", "close_ts", "open_ts"):
            if _int(body.get(key)) is not None:
                event_ms = _int(body.get(key)) * 1000  # type: ignore[operator]
                break
        extra = body.get("additional_metadata")
        event_ticker = body.get("event_ticker")
        if event_ticker is None and isinstance(extra, dict):
            event_ticker = extra.get("event_ticker")
        return LifecycleMessage(
            **common,
            ts_ms=ts_ms if ts_ms is not None else event_ms,
            market_ticker=body.get("market_ticker"),
            event_ticker=event_ticker,
            event_type=body.get("event_type") or ("event" if kind == "event_lifecycle" else None),
            result=body.get("result"),
            settlement_value=_dec(body.get("settlement_value"), "settlement_value"),
            close_ts=_int(body.get("close_ts")),
            settled_ts=_int(body.get("settled_ts")),
            determination_ts=_int(body.get("determination_ts")),
        )
    return UnknownMessage(**common, ts_ms=ts_ms)


# ---------------------------------------------------------------------------------------- orderbook


class LocalOrderbook:
    """An orderbook rebuilt from `orderbook_snapshot` + `orderbook_delta` (bids of YES and NO, by price)."""

    def __init__(self, market_ticker: str) -> None:
        """Create an empty, stale book (it becomes fresh on the first snapshot)."""
        self.market_ticker = market_ticker
        self.yes: dict[Decimal, Decimal] = {}
        self.no: dict[Decimal, Decimal] = {}
        self.stale = True

    def apply_snapshot(self, snapshot: OrderbookSnapshot) -> None:
        """Replace the book with a snapshot and mark it fresh."""
        self.yes = {p: s for p, s in snapshot.yes if s > 0}
        self.no = {p: s for p, s in snapshot.no if s > 0}
        self.stale = False

    def apply_delta(self, delta: OrderbookDelta) -> None:
        """Apply a signed size change; a level whose size reaches zero or less is removed."""
        side = self.yes if delta.side == "yes" else self.no
        size = side.get(delta.price, Decimal(0)) + delta.delta
        if size > 0:
            side[delta.price] = size
        else:
            side.pop(delta.price, None)

    def levels(self, side: str) -> list[tuple[Decimal, Decimal]]:
        """Levels of one side ascending by price, the REST `orderbook_fp` order (best bid last)."""
        book = self.yes if side == "yes" else self.no
        return sorted(book.items())


# ------------------------------------------------------------------------------------------- client


class _WatchedConnection(ClientConnection):
    """A client connection that records when any frame (data, Ping, Pong) last arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_frame_monotonic = time.monotonic()
        self.stats: StreamStats | None = None

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame):
            self.last_frame_monotonic = time.monotonic()
            if event.opcode is Opcode.PING and self.stats is not None:
                self.stats.pings_received += 1
                self.stats.ping_times.append(time.time())
                del self.stats.ping_times[:-100]
                self.stats.ping_payloads[bytes(event.data)[:32].decode("utf-8", "replace")] += 1
        super().process_event(event)


@dataclass
class _Channel:
    """Desired and live state of one channel's subscription."""

    name: str
    tickers: set[str] | None  # None = all markets (no filter)
    sid: int | None = None
    last_seq: int | None = None
    last_ts_ms: int | None = None


@dataclass
class StreamStats:
    """Counters of one client's lifetime (all connections)."""

    connects: int = 0
    disconnects: int = 0
    frames: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    gaps: int = 0
    resyncs: int = 0
    errors: int = 0
    malformed: int = 0
    dropped: int = 0
    pings_received: int = 0
    ping_payloads: Counter[str] = field(default_factory=Counter)
    ping_times: list[float] = field(default_factory=list)
    max_queue_depth: int = 0
    blocked_seconds: float = 0.0


def _group_by_markets(states: list[_Channel]) -> list[list[_Channel]]:
    groups: dict[frozenset[str] | None, list[_Channel]] = {}
    for state in states:
        key = None if state.tickers is None else frozenset(state.tickers)
        groups.setdefault(key, []).append(state)
    return list(groups.values())


class KalshiWebSocket:
    """A reconnecting Kalshi WebSocket session; iterate it for messages and stream events.

    Args:
        url: The WebSocket URL (`ws://` or `wss://`); default from `ws_url_from_env()`.
        signer: `(method, path) -> headers`; called on every connect with `("GET", <url path>)`. Kalshi
            rejects unsigned handshakes with HTTP 401.
        queue_size: Capacity of the buffer between the socket reader and the consumer.
        overflow: What the reader does when that buffer is full: "block" (stop reading the socket until the
            consumer catches up; TCP pushes back and Kalshi may answer with error 25) or "drop" (drop the
            message, emit a gap for its channel once the buffer has room, resync orderbooks).
        heartbeat_timeout: Reconnect when no frame at all (data, Ping or Pong) arrived for this long;
            Kalshi pings every 10 s, so quiet markets never trigger it.
        backoff_initial: First reconnect delay ceiling in seconds (doubles per failed attempt, full jitter).
        backoff_max: Cap of the reconnect delay ceiling.
        open_timeout: Handshake timeout in seconds.
        ack_timeout: How long command helpers wait for Kalshi's answer.
        max_reconnects: Give up (raise from the iterator) after this many consecutive failed connects;
            None retries forever.
        track_books: Maintain a `LocalOrderbook` per market of the orderbook channel in `.books`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        signer: Signer | None = None,
        queue_size: int = 10_000,
        overflow: OverflowPolicy = "block",
        heartbeat_timeout: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        open_timeout: float = 10.0,
        ack_timeout: float = 10.0,
        max_reconnects: int | None = None,
        track_books: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if overflow not in ("block", "drop"):
            raise KalshiConfigError(f"overflow must be 'block' or 'drop', got {overflow!r}")
        if queue_size < 1:
            raise KalshiConfigError(f"queue_size must be >= 1, got {queue_size!r}")
        self.url = validate_ws_url(url) if url else ws_url_from_env()
        self.path = urlsplit(self.url).path or WS_PATH
        self._signer = signer
        self.queue_size = queue_size
        self.overflow = overflow
        self.heartbeat_timeout = heartbeat_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.open_timeout = open_timeout
        self.ack_timeout = ack_timeout
        self.max_reconnects = max_reconnects
        self.track_books = track_books
        self._rng = rng or random.Random()
        self.stats = StreamStats()
        self.books: dict[str, LocalOrderbook] = {}
        self.connection_number = 0
        self._channels: dict[str, _Channel] = {}
        self._queue: asyncio.Queue[StreamItem | BaseException] = asyncio.Queue(maxsize=queue_size)
        self._pending: dict[int, asyncio.Future[list[ControlMessage]]] = {}
        self._pending_channels: dict[int, set[str]] = {}
        self._pending_replies: dict[int, list[ControlMessage]] = {}
        self._next_id = 1
        self._conn: _WatchedConnection | None = None
        self._connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._dropped_channels: dict[str, int | None] = {}
        self._last_exchange_ms: int | None = None
        self._fatal: BaseException | None = None
        self._blocked = False
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(cls, config: Any, *, url: str | None = None, **kwargs: Any) -> KalshiWebSocket:
        """Build a client from a `KalshiConfig`: its signer, and `url` or `KALSHI_WS_URL` or its base URL."""
        signer = config.signer()
        env_url = (os.environ.get("KALSHI_WS_URL") or "").strip()
        target = url or env_url or derive_ws_url(config.base_url)
        return cls(target, signer=signer.sign if signer is not None else None, **kwargs)

    def __repr__(self) -> str:
        return f"KalshiWebSocket(url={self.url!r}, connection={self.connection_number})"

    # ----------------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> KalshiWebSocket:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start the background connect/read loop (idempotent)."""
        if self._runner is None:
            self._closing = False
            self._runner = asyncio.create_task(self._run(), name="kalshi-ws")

    async def close(self) -> None:
        """Stop reconnecting, close the socket and end iteration."""
        self._closing = True
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
            self._runner = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(KalshiWebSocketError("the WebSocket client was closed"))
        self._pending.clear()

    @property
    def connected(self) -> bool:
        """Whether a connection is currently open."""
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the socket is open.

        Raises:
            KalshiAuthError: The handshake was rejected (the client gave up).
            KalshiWebSocketError: The client gave up for another reason.
            TimeoutError: Not connected after `timeout` seconds.
        """
        self.start()
        assert self._runner is not None
        waiter = asyncio.ensure_future(self._connected.wait())
        done, _ = await asyncio.wait(
            {waiter, self._runner}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter in done:
            return
        waiter.cancel()
        if self._fatal is not None:
            raise self._fatal
        if self._runner in done:
            raise KalshiWebSocketError(f"the connection loop to {self.url} ended")
        raise TimeoutError(f"not connected to {self.url} after {timeout} s")

    async def force_reconnect(self) -> None:
        """Drop the current connection as if the network failed (the client reconnects and resubscribes)."""
        if self._conn is not None:
            self._conn.transport.abort()

    def queue_depth(self) -> int:
        """Items waiting for the consumer."""
        return self._queue.qsize()

    # ----------------------------------------------------------------------------------- iterate

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamItem]:
        self.start()
        while True:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def next_nowait(self) -> StreamItem | None:
        """Return the next buffered message or event without waiting (None when the buffer is empty)."""
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def next_item(self, timeout: float | None = None) -> StreamItem:
        """Return the next message or event (raises TimeoutError after `timeout` seconds)."""
        self.start()
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    # ----------------------------------------------------------------------------------- commands

    async def subscribe(
        self, channels: Iterable[str], market_tickers: Iterable[str] | None = None
    ) -> dict[str, int]:
        """Subscribe to channels (one sid per channel) for some markets (None = all, where allowed).

        The subscription is remembered and renewed after every reconnect. When connected, waits for the
        `subscribed`/`ok` answers and returns `{channel: sid}`; otherwise returns `{}` and subscribes on connect.

        Raises:
            KalshiConfigError: An unknown channel, or an orderbook subscription without markets.
            WsCommandError: Kalshi answered with an error frame.
        """
        names = list(dict.fromkeys(channels))
        tickers = None if market_tickers is None else list(dict.fromkeys(market_tickers))
        for name in names:
            if name not in CHANNELS:
                raise KalshiConfigError(
                    f"unknown channel {name!r}; expected one of {', '.join(CHANNELS)}"
                )
            if name == "orderbook_delta" and not tickers:
                raise KalshiConfigError(
                    "orderbook_delta needs market tickers (Kalshi requires a filter)"
                )
        result: dict[str, int] = {}
        fresh: list[_Channel] = []
        for name in names:
            wanted = None if name in UNFILTERED_CHANNELS or tickers is None else set(tickers)
            state = self._channels.get(name)
            if state is None:
                self._channels[name] = state = _Channel(name, wanted)
                fresh.append(state)
            else:
                new = set() if state.tickers is None or wanted is None else wanted - state.tickers
                if wanted is None:
                    state.tickers = None
                elif state.tickers is not None:
                    state.tickers |= wanted
                if new and self.connected and state.sid is not None:
                    await self._command(
                        "update_subscription",
                        {
                            "sids": [state.sid],
                            "market_tickers": sorted(new),
                            "action": "add_markets",
                        },
                    )
        if fresh and self.connected:
            for group in _group_by_markets(fresh):
                await self._send_subscribe(group, wait=True)
        for name in names:
            sid = self._channels[name].sid
            if sid is not None:
                result[name] = sid
        return result

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        """Unsubscribe from channels and forget them (waits for `unsubscribed` when connected)."""
        sids = []
        for name in channels:
            state = self._channels.pop(name, None)
            if state is not None and state.sid is not None:
                sids.append(state.sid)
        if sids and self.connected:
            await self._command("unsubscribe", {"sids": sids})

    async def delete_markets(self, channel: str, market_tickers: Iterable[str]) -> None:
        """Remove markets from a channel's subscription (`update_subscription` `delete_markets`)."""
        state = self._channels.get(channel)
        tickers = sorted(set(market_tickers))
        if state is None or not tickers:
            return
        if state.tickers is not None:
            state.tickers -= set(tickers)
        for ticker in tickers:
            self.books.pop(ticker, None)
        if self.connected and state.sid is not None:
            await self._command(
                "update_subscription",
                {"sids": [state.sid], "market_tickers": tickers, "action": "delete_markets"},
            )

    async def request_snapshot(self, market_tickers: Iterable[str] | None = None) -> None:
        """Ask for fresh orderbook snapshots (`update_subscription` `get_snapshot`) without waiting."""
        state = self._channels.get("orderbook_delta")
        if state is None or state.sid is None or not self.connected:
            return
        tickers = sorted(market_tickers if market_tickers is not None else (state.tickers or ()))
        if not tickers:
            return
        for ticker in tickers:
            if ticker in self.books:
                self.books[ticker].stale = True
        await self._send(
            "update_subscription",
            {"sids": [state.sid], "market_tickers": tickers, "action": "get_snapshot"},
        )

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        """Ask Kalshi for this connection's subscriptions: `[{"channel": ..., "sid": ...}, ...]`."""
        replies = await self._command("list_subscriptions", None)
        body = replies[0].body if replies else None
        return list(body) if isinstance(body, list) else []

    def subscriptions(self) -> dict[str, int | None]:
        """The channels this client wants, with their sid on the current connection (None = not yet)."""
        return {name: state.sid for name, state in self._channels.items()}

    def subscribed_tickers(self, channel: str) -> set[str] | None:
        """The markets wanted on a channel (None = all markets)."""
        state = self._channels.get(channel)
        return None if state is None or state.tickers is None else set(state.tickers)

    async def _send(self, cmd: str, params: dict[str, Any] | None) -> int:
        if self._conn is None:
            raise KalshiWebSocketError(f"cannot send {cmd}: not connected")
        command_id = self._next_id
        self._next_id += 1
        payload: dict[str, Any] = {"id": command_id, "cmd": cmd}
        if params is not None:
            payload["params"] = params
        await self._conn.send(json.dumps(payload))
        return command_id

    async def _command(
        self, cmd: str, params: dict[str, Any] | None, *, channels: set[str] | None = None
    ) -> list[ControlMessage]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[ControlMessage]] = loop.create_future()
        command_id = self._next_id
        self._pending[command_id] = future
        if channels:
            self._pending_channels[command_id] = set(channels)
        self._pending_replies[command_id] = []
        try:
            await self._send(cmd, params)
            return await asyncio.wait_for(future, self.ack_timeout)
        finally:
            self._pending.pop(command_id, None)
            self._pending_channels.pop(command_id, None)
            self._pending_replies.pop(command_id, None)

    async def _send_subscribe(self, states: list[_Channel], *, wait: bool) -> None:
        """Subscribe channels sharing one market filter with a single command.

        One command means Kalshi starts all of them at the same instant, so a ticker snapshot and the trade
        stream that follows it leave no hole between them.
        """
        params: dict[str, Any] = {"channels": [s.name for s in states]}
        tickers = states[0].tickers
        if tickers is not None:
            params["market_tickers"] = sorted(tickers)
        if any(s.name == "ticker" for s in states):
            params["send_initial_snapshot"] = True
        names = {s.name for s in states}
        if wait:
            await self._command("subscribe", params, channels=names)
        else:
            command_id = await self._send("subscribe", params)
            self._pending_channels[command_id] = names

    # ----------------------------------------------------------------------------------- internals

    def _event(self, kind: EventKind, detail: str = "", **fields: Any) -> StreamEvent:
        return StreamEvent(
            kind=kind,
            at_ms=int(time.time() * 1000),
            connection=self.connection_number,
            detail=detail,
            **fields,
        )

    async def _emit(self, item: StreamItem | BaseException) -> None:
        """Hand an item to the consumer following the overflow policy."""
        if isinstance(item, (StreamEvent, BaseException)):
            # Events are rare and must not be lost: always wait for room.
            await self._put_blocking(item)
            return
        if self.overflow == "block":
            await self._put_blocking(item)
            return
        if self._dropped_channels:
            self._flush_dropped()
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            channel = self._channel_of(item)
            if channel is not None and channel not in self._dropped_channels:
                self._dropped_channels[channel] = self._channels[channel].last_ts_ms
        self.stats.max_queue_depth = max(self.stats.max_queue_depth, self._queue.qsize())

    async def _put_blocking(self, item: StreamItem | BaseException) -> None:
        if self._queue.full():
            started = time.monotonic()
            self._blocked = True
            try:
                await self._queue.put(item)
            finally:
                self._blocked = False
                self.stats.blocked_seconds += time.monotonic() - started
        else:
            self._queue.put_nowait(item)
        self.stats.max_queue_depth = max(self.stats.max_queue_depth, self._queue.qsize())

    def _flush_dropped(self) -> None:
        """After drops, emit gap events (and resync orderbooks) once the buffer has room for them."""
        if self._queue.qsize() > self.queue_size // 2:
            return
        now_ms = int(time.time() * 1000)
        for channel, since in list(self._dropped_channels.items()):
            state = self._channels.get(channel)
            tickers = tuple(sorted(state.tickers or ())) if state else ()
            self._queue.put_nowait(
                self._event(
                    "gap",
                    f"consumer too slow: messages of {channel} dropped (overflow policy 'drop')",
                    channel=channel,
                    sid=state.sid if state else None,
                    market_tickers=tickers,
                    since_ms=since,
                    until_ms=self._last_exchange_ms or now_ms,
                )
            )
            self.stats.gaps += 1
            if channel == "orderbook_delta":
                task = asyncio.get_running_loop().create_task(self._resync_orderbook("overflow"))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        self._dropped_channels.clear()

    def _channel_of(self, item: WsMessage) -> str | None:
        for name, state in self._channels.items():
            if state.sid is not None and state.sid == item.sid:
                return name
        return None

    async def _resync_orderbook(self, reason: str) -> None:
        state = self._channels.get("orderbook_delta")
        if state is None or state.sid is None or not self.connected:
            return
        tickers = sorted(state.tickers or ())
        with contextlib.suppress(KalshiWebSocketError, ConnectionClosed):
            await self.request_snapshot(tickers)
            self.stats.resyncs += 1
            await self._emit(
                self._event(
                    "resync",
                    f"requested orderbook snapshots after {reason}",
                    channel="orderbook_delta",
                    sid=state.sid,
                    market_tickers=tuple(tickers),
                )
            )

    async def _run(self) -> None:
        failures = 0
        disconnected_at_ms: int | None = None
        while not self._closing:
            try:
                headers = dict(self._signer("GET", self.path)) if self._signer else {}
                conn = await websockets.connect(
                    self.url,
                    additional_headers=headers,
                    create_connection=_WatchedConnection,
                    ping_interval=None,
                    open_timeout=self.open_timeout,
                    max_size=64 * 2**20,
                    max_queue=64,
                    compression=None,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    error = KalshiAuthError(
                        f"WebSocket handshake to {self.url} rejected with HTTP {status}: {AUTH_HINT}; "
                        f"the handshake signs GET {self.path}",
                        status=status,
                        method="GET",
                        path=self.path,
                    )
                    self._fatal = error
                    await self._emit(self._event("error", str(error).split(";")[0], code=status))
                    await self._emit(error)
                    return
                failures += 1
                await self._emit(
                    self._event("error", f"handshake failed: HTTP {status}", code=status)
                )
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                failures += 1
                await self._emit(
                    self._event("error", f"connect failed: {type(exc).__name__}: {exc}")
                )
            else:
                lived = await self._serve_connection(conn, disconnected_at_ms)
                disconnected_at_ms = self._last_exchange_ms or int(time.time() * 1000)
                failures = 0 if lived else failures + 1
            if self._closing:
                return
            if self.max_reconnects is not None and failures > self.max_reconnects:
                self._fatal = KalshiWebSocketError(
                    f"gave up on {self.url} after {failures} failed connects"
                )
                await self._emit(self._fatal)
                return
            ceiling = min(self.backoff_max, self.backoff_initial * 2 ** max(failures - 1, 0))
            await asyncio.sleep(
                self._rng.uniform(0, ceiling) if failures else self.backoff_initial / 4
            )

    async def _serve_connection(self, conn: _WatchedConnection, down_since_ms: int | None) -> bool:
        """Run one connection until it drops; return whether it delivered data (backoff resets)."""
        self.connection_number += 1
        self.stats.connects += 1
        self._conn = conn
        conn.stats = self.stats
        for state in self._channels.values():
            state.sid, state.last_seq = None, None
        for book in self.books.values():
            book.stale = True
        await self._emit(self._event("connect", f"connected to {self.url}"))
        if down_since_ms is not None:
            for state in self._channels.values():
                if state.name in ("ticker", "trade"):
                    self.stats.gaps += 1
                    await self._emit(
                        self._event(
                            "gap",
                            "reconnected: messages sent while disconnected are lost "
                            "(until the first message of the new connection)",
                            channel=state.name,
                            market_tickers=tuple(sorted(state.tickers or ())),
                            since_ms=down_since_ms,
                            until_ms=None,
                        )
                    )
        frames_before = self.stats.frames
        reason = "closed"
        watchdog = asyncio.create_task(self._watchdog(conn))
        try:
            for group in _group_by_markets(list(self._channels.values())):
                await self._send_subscribe(group, wait=False)
            self._connected.set()
            async for raw in conn:
                await self._handle_frame(raw)
        except ConnectionClosed as exc:
            reason = f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
        except asyncio.CancelledError:
            reason = "client closed"
            raise
        finally:
            watchdog.cancel()
            self._connected.clear()
            self._conn = None
            self.stats.disconnects += 1
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(KalshiWebSocketError(f"connection lost: {reason}"))
            if not watchdog.cancelled() and watchdog.done() and watchdog.result():
                reason = watchdog.result() or reason
            if not self._closing:
                await self._emit(self._event("disconnect", reason))
        return self.stats.frames > frames_before

    async def _watchdog(self, conn: _WatchedConnection) -> str | None:
        while True:
            await asyncio.sleep(min(1.0, self.heartbeat_timeout / 4))
            silent = time.monotonic() - conn.last_frame_monotonic
            if self._blocked:
                conn.last_frame_monotonic = time.monotonic()
                continue
            if silent > self.heartbeat_timeout:
                await self._emit(
                    self._event(
                        "heartbeat_timeout",
                        f"no frame (data or Ping) for {silent:.1f} s; reconnecting",
                    )
                )
                conn.transport.abort()
                return f"heartbeat timeout after {silent:.1f} s"

    async def _handle_frame(self, raw: str | bytes) -> None:
        received_ms = int(time.time() * 1000)
        self.stats.frames += 1
        try:
            message = parse_message(raw, received_ms=received_ms)
        except KalshiWebSocketError as exc:
            self.stats.malformed += 1
            self.stats.errors += 1
            await self._emit(self._event("error", f"malformed frame skipped: {exc}"))
            return
        self.stats.by_type[message.type] += 1
        if isinstance(message, ControlMessage):
            await self._handle_control(message)
            return
        if message.ts_ms is not None:
            self._last_exchange_ms = max(self._last_exchange_ms or 0, message.ts_ms)
        channel = self._channel_of(message)
        if message.seq is not None and message.sid is not None:
            await self._check_seq(message.sid, message.seq, message.ts_ms, channel)
        if channel is not None and message.ts_ms is not None:
            self._channels[channel].last_ts_ms = message.ts_ms
        if self.track_books:
            if isinstance(message, OrderbookSnapshot):
                book = self.books.setdefault(
                    message.market_ticker, LocalOrderbook(message.market_ticker)
                )
                book.apply_snapshot(message)
            elif isinstance(message, OrderbookDelta):
                book = self.books.setdefault(
                    message.market_ticker, LocalOrderbook(message.market_ticker)
                )
                if not book.stale:
                    book.apply_delta(message)
        if isinstance(message, UnknownMessage):
            return
        await self._emit(message)  # type: ignore[arg-type]

    async def _check_seq(self, sid: int, seq: int, ts_ms: int | None, channel: str | None) -> None:
        state = self._channels.get(channel) if channel else None
        if state is None:
            return
        expected = (state.last_seq or 0) + 1
        state.last_seq = seq if state.last_seq is None or seq > state.last_seq else state.last_seq
        if seq == expected:
            return
        self.stats.gaps += 1
        await self._emit(
            self._event(
                "gap",
                f"seq gap on sid {sid}: expected {expected}, got {seq}",
                channel=channel,
                sid=sid,
                market_tickers=tuple(sorted(state.tickers or ())),
                since_ms=state.last_ts_ms,
                until_ms=ts_ms,
            )
        )
        if channel == "orderbook_delta":
            await self._resync_orderbook(f"seq gap (expected {expected}, got {seq})")

    async def _handle_control(self, message: ControlMessage) -> None:
        if message.type == "subscribed":
            channel = message.channel
            if channel in self._channels and message.sid is not None:
                state = self._channels[channel]
                state.sid, state.last_seq = message.sid, 0
        elif message.type == "ok" and message.seq is not None and message.sid is not None:
            channel = self._channel_of(message)
            await self._check_seq(message.sid, message.seq, None, channel)
        elif message.type == "error":
            self.stats.errors += 1
            pending = message.id is not None and message.id in self._pending
            if not pending:
                await self._emit(
                    self._event(
                        "error",
                        f"Kalshi error {message.code}: {message.message}",
                        code=message.code,
                        sid=message.sid,
                    )
                )
            if message.code == 25:
                # Kalshi dropped messages for a slow reader: treat every channel as gapped.
                for state in self._channels.values():
                    if state.name != "orderbook_delta":
                        self.stats.gaps += 1
                        await self._emit(
                            self._event(
                                "gap",
                                "Kalshi error 25 (subscription buffer overflow): messages were dropped",
                                channel=state.name,
                                sid=state.sid,
                                market_tickers=tuple(sorted(state.tickers or ())),
                                since_ms=state.last_ts_ms,
                                until_ms=None,
                                code=25,
                            )
                        )
                await self._resync_orderbook("error 25 (buffer overflow)")
        if message.id is None:
            return
        replies = self._pending_replies.get(message.id)
        if replies is not None:
            replies.append(message)
        waiting_for = self._pending_channels.get(message.id)
        if message.type == "subscribed" and waiting_for is not None:
            waiting_for.discard(message.channel or "")
            if waiting_for:
                return
            if message.id not in self._pending:
                self._pending_channels.pop(message.id, None)
        elif (
            message.type == "error" and waiting_for is not None and message.id not in self._pending
        ):
            self._pending_channels.pop(message.id, None)
        future = self._pending.get(message.id)
        if future is None or future.done():
            return
        if message.type == "error":
            future.set_exception(
                WsCommandError(message.code, message.message or "", command="command")
            )
        else:
            future.set_result(list(replies or [message]))
