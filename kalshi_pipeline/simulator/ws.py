"""The simulated exchange's WebSocket API at `/trade-api/ws/v2`, written from Kalshi's documented protocol.

Independent of the client in `kalshi_pipeline.kalshi` (no shared code): its own signature check, command
parser and message shapes. Every market event comes from the same `MarketPath` the REST layer serves, so
candles built from this stream equal the REST candles exactly.

Protocol (Kalshi's AsyncAPI as documented in 2026):

- Handshake: `KALSHI-ACCESS-KEY`, `KALSHI-ACCESS-TIMESTAMP` (ms), `KALSHI-ACCESS-SIGNATURE` (base64 RSA-PSS
  SHA-256, salt = digest length, over `timestamp + "GET" + "/trade-api/ws/v2"`). Missing headers, an unknown
  key or a bad signature -> HTTP 401. Without configured keys any well-formed signed handshake is accepted.
- Commands `subscribe`, `unsubscribe`, `update_subscription` (`add_markets`, `delete_markets`,
  `get_snapshot`), `list_subscriptions`; answers `subscribed`, `ok`, `unsubscribed`, `error` (numeric codes).
- Channels `ticker` (no seq), `trade`, `orderbook_delta` (`orderbook_snapshot` then `orderbook_delta`) and
  `market_lifecycle_v2`; `seq` is per sid and starts at 1; acks of `add_markets`/`delete_markets` and
  `unsubscribed` consume a seq, as measured on Kalshi's demo.
- A WebSocket Ping control frame with payload `heartbeat` every 10 s.

Fault injection (`SimulatorConfig.ws_faults`, comma-separated `key=value`):

- `ping_interval=S`: seconds between server Pings (default 10; 0 disables them).
- `disconnect_after=N`: close the connection (code 1011) after N market messages; `disconnect_times=K`
  limits it to the first K connections of the server (default 1).
- `drop_seq_after=N`: silently drop the N-th sequenced message of a connection (its seq is consumed);
  `drop_seq_channel=orderbook_delta|trade|market_lifecycle_v2` (default orderbook_delta);
  `drop_seq_times=K` connections (default 1).
- `overflow_after=N`: after N market messages answer error 25 (subscription buffer overflow) on the
  trade/ticker sids and drop the next `overflow_drop=M` market messages (default 20); first connection only
  unless `overflow_times=K`.
- `malformed_every=N`: send a malformed (non-JSON) text frame after every N-th market message.
- `stall_after=N`: after N market messages stop sending anything, Pings included (first connection only
  unless `stall_times=K`); the session waits for the client to give up.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import contextlib
import functools
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from kalshi_pipeline.simulator.auth import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AuthError,
    KeyRing,
)
from kalshi_pipeline.simulator.config import SimulatorConfig
from kalshi_pipeline.simulator.market_model.path import (
    BookLadder,
    MarketPath,
    QuoteChange,
    TradePrint,
)
from kalshi_pipeline.simulator.market_model.prices import PIPS
from kalshi_pipeline.simulator.payloads import count_fp, dollars, ladder, rfc3339_ms, trade_fields
from kalshi_pipeline.simulator.world import Game, World

log = logging.getLogger(__name__)

WS_PATH = "/trade-api/ws/v2"
CHANNELS = ("ticker", "trade", "orderbook_delta", "market_lifecycle_v2")
FEED_INTERVAL_S = 0.05
_MARKET_NS = uuid.UUID("0b6f0c7e-4d0e-4c47-9a55-2f1f1c1d2e3a")

# Kalshi's WS error codes (quick_start_websockets table).
E_UNPROCESSABLE = 1
E_PARAMS_REQUIRED = 2
E_CHANNELS_REQUIRED = 3
E_SIDS_REQUIRED = 4
E_UNKNOWN_COMMAND = 5
E_UNKNOWN_SID = 7
E_UNKNOWN_CHANNEL = 8
E_INVALID_PARAMETER = 11
E_ONE_SID_REQUIRED = 12
E_UNSUPPORTED_ACTION = 13
E_TICKER_REQUIRED = 14
E_ACTION_REQUIRED = 15
E_MARKET_NOT_FOUND = 16
E_BUFFER_OVERFLOW = 25

ERROR_TEXT = {
    E_UNPROCESSABLE: "Unable to process message",
    E_PARAMS_REQUIRED: "Params required",
    E_CHANNELS_REQUIRED: "Channels required",
    E_SIDS_REQUIRED: "Subscription IDs required",
    E_UNKNOWN_COMMAND: "Unknown command",
    E_UNKNOWN_SID: "Unknown subscription ID",
    E_UNKNOWN_CHANNEL: "Unknown channel name",
    E_INVALID_PARAMETER: "Invalid parameter",
    E_ONE_SID_REQUIRED: "Exactly one subscription ID is required",
    E_UNSUPPORTED_ACTION: "Unsupported action",
    E_TICKER_REQUIRED: "Market Ticker required",
    E_ACTION_REQUIRED: "Action required",
    E_MARKET_NOT_FOUND: "Market not found",
    E_BUFFER_OVERFLOW: "Subscription buffer overflow",
}


@functools.lru_cache(maxsize=4096)
def _market_id(ticker: str) -> str:
    """The stable `market_id` UUID of a market (computed once per ticker, not per message)."""
    return str(uuid.uuid5(_MARKET_NS, ticker))


class CommandError(Exception):
    """A client command Kalshi would answer with an `error` frame."""

    def __init__(self, code: int, **extra: Any) -> None:
        super().__init__(ERROR_TEXT.get(code, "error"))
        self.code = code
        self.extra = extra


# ------------------------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class WsFaults:
    """Parsed `ws_faults` settings (see the module docstring)."""

    ping_interval: float = 10.0
    disconnect_after: int | None = None
    disconnect_times: int = 1
    drop_seq_after: int | None = None
    drop_seq_channel: str = "orderbook_delta"
    drop_seq_times: int = 1
    overflow_after: int | None = None
    overflow_drop: int = 20
    overflow_times: int = 1
    malformed_every: int | None = None
    stall_after: int | None = None
    stall_times: int = 1

    @classmethod
    def parse(cls, spec: str | None) -> WsFaults:
        """Parse `key=value,key=value`; raise ValueError with the offending part on bad input."""
        if not spec or not spec.strip():
            return cls()
        values: dict[str, Any] = {}
        fields = cls.__dataclass_fields__
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in fields:
                raise ValueError(
                    f"ws_faults: {part!r} is not key=value with key in {', '.join(sorted(fields))}"
                )
            if key == "drop_seq_channel":
                if raw.strip() not in CHANNELS:
                    raise ValueError(
                        f"ws_faults: drop_seq_channel must be one of {', '.join(CHANNELS)}"
                    )
                values[key] = raw.strip()
                continue
            try:
                number = float(raw) if key == "ping_interval" else int(raw)
            except ValueError:
                raise ValueError(f"ws_faults: {key}={raw!r} is not a number") from None
            if number < 0 or (
                key != "ping_interval" and key.endswith(("_every", "_after")) and number < 1
            ):
                raise ValueError(f"ws_faults: {key}={raw!r} is out of range")
            values[key] = number
        return cls(**values)


class _FaultBudget:
    """How many connections each fault may still hit (shared by all sessions of one server)."""

    def __init__(self, faults: WsFaults) -> None:
        self._lock = threading.Lock()
        self._left = {
            "disconnect": faults.disconnect_times if faults.disconnect_after else 0,
            "drop_seq": faults.drop_seq_times if faults.drop_seq_after else 0,
            "overflow": faults.overflow_times if faults.overflow_after else 0,
            "stall": faults.stall_times if faults.stall_after else 0,
        }

    def take(self, name: str) -> bool:
        with self._lock:
            if self._left.get(name, 0) > 0:
                self._left[name] -= 1
                return True
            return False


# --------------------------------------------------------------------------------------------- auth


class HandshakeVerifier:
    """Checks Kalshi's three signed headers on the WebSocket upgrade request (with the REST key ring)."""

    def __init__(self, keyring: KeyRing) -> None:
        """Verify against the REST gateway's key ring (its keys are loaded once per app)."""
        self.keyring = keyring

    def verify(self, headers: Any, path: str) -> str | None:
        """Return None when the handshake is acceptable, else the reason it is not.

        Kalshi always requires a signed handshake, so unlike REST an unsigned upgrade is refused even
        when the simulator has no keys; without keys any well-formed signature is accepted.
        """
        key_id = headers.get(KEY_HEADER)
        timestamp = headers.get(TIMESTAMP_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if not key_id or not timestamp or not signature:
            return "MISSING_API_KEY_HEADERS"
        if len(self.keyring) == 0:
            if not timestamp.isdigit():
                return "INVALID_API_KEY_TIMESTAMP"
            try:
                raw = base64.b64decode(signature, validate=True)
            except (binascii.Error, ValueError):
                return "INCORRECT_API_KEY_SIGNATURE"
            return None if raw else "INCORRECT_API_KEY_SIGNATURE"
        try:
            self.keyring.verify(
                {KEY_HEADER: key_id, TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature},
                "GET",
                path,
            )
        except AuthError as exc:
            return exc.details
        return None


# --------------------------------------------------------------------------------------- lifecycle


@dataclass(frozen=True, slots=True)
class _LifecycleEvent:
    ts_ms: int
    ticker: str
    event_type: str
    game: Game


class _LifecycleIndex:
    """All lifecycle instants of all markets, sorted, for range queries."""

    def __init__(self, world: World) -> None:
        events: list[_LifecycleEvent] = []
        for game in world.games:
            for ticker in game.market_tickers:
                for ts, kind in (
                    (game.created_s, "created"),
                    (game.close_s, "close_date_updated"),
                    (game.determined_s, "determined"),
                    (game.settled_s, "settled"),
                ):
                    events.append(_LifecycleEvent(ts * 1000, ticker, kind, game))
        events.sort(key=lambda e: (e.ts_ms, e.ticker))
        self.events = events
        self.times = [e.ts_ms for e in events]

    def between(self, t0_ms: int, t1_ms: int) -> list[_LifecycleEvent]:
        lo = bisect.bisect_right(self.times, t0_ms)
        hi = bisect.bisect_right(self.times, t1_ms)
        return self.events[lo:hi]


# ------------------------------------------------------------------------------------------ session


@dataclass
class _Subscription:
    sid: int
    channel: str
    tickers: set[str] | None
    seq: int = 0


@dataclass
class _SessionFaults:
    disconnect_at: int | None = None
    drop_seq_at: int | None = None
    overflow_at: int | None = None
    stall_at: int | None = None
    dropping: int = 0
    sequenced: int = 0


@dataclass
class WsServerStats:
    """Counters of the server side (all sessions), for tests and the probe."""

    connections: int = 0
    rejected: int = 0
    pings_sent: int = 0
    messages_sent: int = 0
    faults_fired: list[str] = field(default_factory=list)


class _Session:
    def __init__(self, hub: WsHub, websocket: WebSocket) -> None:
        self.hub = hub
        self.world = hub.world
        self.ws = websocket
        self.subs: dict[int, _Subscription] = {}
        self.next_sid = 1
        self.cursor_ms = self.world.now_ms()
        self.books: dict[str, BookLadder] = {}
        self.commands: asyncio.Queue[str | None] = asyncio.Queue()
        self.market_messages = 0
        self.stalled = False
        self.closed = False
        faults = hub.faults
        self.faults = _SessionFaults(
            disconnect_at=faults.disconnect_after if hub.budget.take("disconnect") else None,
            drop_seq_at=faults.drop_seq_after if hub.budget.take("drop_seq") else None,
            overflow_at=faults.overflow_after if hub.budget.take("overflow") else None,
            stall_at=faults.stall_after if hub.budget.take("stall") else None,
        )

    # -- plumbing ---------------------------------------------------------------------------------
    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(frame, separators=(",", ":")))
        self.hub.stats.messages_sent += 1

    async def send_market(self, sub: _Subscription, kind: str, msg: dict[str, Any]) -> None:
        """Send one market-data message, applying seq numbering and the configured faults."""
        frame: dict[str, Any] = {"type": kind, "sid": sub.sid}
        sequenced = sub.channel != "ticker"
        if sequenced:
            sub.seq += 1
            frame["seq"] = sub.seq
        frame["msg"] = msg
        f = self.faults
        if (
            sequenced
            and f.drop_seq_at is not None
            and sub.channel == self.hub.faults.drop_seq_channel
        ):
            f.sequenced += 1
            if f.sequenced == f.drop_seq_at:
                self.hub.stats.faults_fired.append(f"drop_seq sid={sub.sid} seq={sub.seq}")
                return
        if f.dropping > 0:
            f.dropping -= 1
            return
        await self.send(frame)
        self.market_messages += 1
        n = self.market_messages
        if self.hub.faults.malformed_every and n % self.hub.faults.malformed_every == 0:
            await self.ws.send_text('{"type":"ticker","sid":' + str(sub.sid) + ',"msg":{')
        if f.overflow_at is not None and n == f.overflow_at:
            self.hub.stats.faults_fired.append("overflow")
            for other in self.subs.values():
                if other.channel in ("ticker", "trade"):
                    await self.send(
                        {
                            "type": "error",
                            "sid": other.sid,
                            "msg": {
                                "code": E_BUFFER_OVERFLOW,
                                "msg": ERROR_TEXT[E_BUFFER_OVERFLOW],
                            },
                        }
                    )
            f.dropping = self.hub.faults.overflow_drop
        if f.stall_at is not None and n == f.stall_at:
            self.hub.stats.faults_fired.append("stall")
            self.stalled = True
        if f.disconnect_at is not None and n == f.disconnect_at:
            self.hub.stats.faults_fired.append("disconnect")
            raise _Disconnect()

    async def error(self, command_id: Any, code: int, **extra: Any) -> None:
        msg: dict[str, Any] = {"code": code, "msg": ERROR_TEXT.get(code, "error"), **extra}
        frame: dict[str, Any] = {"type": "error"}
        if isinstance(command_id, int) and command_id:
            frame["id"] = command_id
        frame["msg"] = msg
        await self.send(frame)

    # -- payloads ---------------------------------------------------------------------------------
    def ticker_msg(self, path: MarketPath, ts_ms: int) -> dict[str, Any]:
        state = path.state_at(ts_ms)
        price = state.last_price or 0
        return {
            "market_id": _market_id(path.ticker),
            "market_ticker": path.ticker,
            "price_dollars": dollars(price),
            "yes_bid_dollars": dollars(state.yes_bid),
            "yes_ask_dollars": dollars(state.yes_ask),
            "volume_fp": count_fp(state.volume),
            "open_interest_fp": count_fp(state.open_interest),
            "dollar_volume": state.volume * price // (100 * PIPS),
            "dollar_open_interest": state.open_interest * price // (100 * PIPS),
            "yes_bid_size_fp": count_fp(state.yes_bid_size),
            "yes_ask_size_fp": count_fp(state.yes_ask_size),
            "last_trade_size_fp": count_fp(self._last_trade_size(path, ts_ms)),
            "ts": ts_ms // 1000,
            "ts_ms": ts_ms,
            "time": rfc3339_ms(ts_ms),
        }

    @staticmethod
    def _last_trade_size(path: MarketPath, ts_ms: int) -> int:
        ti = path.trade_index_at(ts_ms)
        return int(path.trade_count[ti]) if ti >= 0 else 0

    @staticmethod
    def trade_msg(path: MarketPath, t: TradePrint) -> dict[str, Any]:
        return {
            "market_ticker": path.ticker,
            **trade_fields(t),
            "ts": t.ts_ms // 1000,
            "ts_ms": t.ts_ms,
        }

    @staticmethod
    def snapshot_msg(ticker: str, book: BookLadder) -> dict[str, Any]:
        msg: dict[str, Any] = {"market_ticker": ticker, "market_id": _market_id(ticker)}
        # Kalshi omits an empty side entirely.
        if book.yes:
            msg["yes_dollars_fp"] = ladder(book.yes)
        if book.no:
            msg["no_dollars_fp"] = ladder(book.no)
        return msg

    async def send_snapshot(self, sub: _Subscription, ticker: str) -> None:
        """Send a market's order book snapshot and make it the base of later deltas."""
        book = self.world.book_at(ticker, self.cursor_ms)
        self.books[ticker] = book
        await self.send_market(sub, "orderbook_snapshot", self.snapshot_msg(ticker, book))

    # -- commands ---------------------------------------------------------------------------------
    def _tickers(self, params: dict[str, Any]) -> list[str] | None:
        single, many = params.get("market_ticker"), params.get("market_tickers")
        if single is not None and many is not None:
            raise CommandError(E_INVALID_PARAMETER)
        if single is not None:
            if not isinstance(single, str):
                raise CommandError(E_INVALID_PARAMETER)
            many = [single]
        if many is None:
            return None
        if not isinstance(many, list) or not all(isinstance(t, str) for t in many):
            raise CommandError(E_INVALID_PARAMETER)
        for ticker in many:
            if ticker not in self.world.by_market:
                raise CommandError(E_MARKET_NOT_FOUND, market_ticker=ticker)
        return list(dict.fromkeys(many))

    def _one_sid(self, params: dict[str, Any]) -> _Subscription:
        sid, sids = params.get("sid"), params.get("sids")
        if sid is None and sids is None:
            raise CommandError(E_SIDS_REQUIRED)
        if sid is None:
            if not isinstance(sids, list) or len(sids) != 1:
                raise CommandError(E_ONE_SID_REQUIRED)
            sid = sids[0]
        sub = self.subs.get(sid) if isinstance(sid, int) else None
        if sub is None:
            raise CommandError(E_UNKNOWN_SID)
        return sub

    async def handle_command(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            await self.error(None, E_UNPROCESSABLE)
            return
        if not isinstance(frame, dict):
            await self.error(None, E_UNPROCESSABLE)
            return
        command_id = frame.get("id")
        cmd = frame.get("cmd")
        params = frame.get("params")
        try:
            if cmd == "subscribe":
                await self.subscribe(command_id, params)
            elif cmd == "unsubscribe":
                await self.unsubscribe(command_id, params)
            elif cmd == "update_subscription":
                await self.update(command_id, params)
            elif cmd == "list_subscriptions":
                subs = [{"channel": s.channel, "sid": s.sid} for s in self.subs.values()]
                await self.send({"type": "ok", "id": command_id, "msg": subs})
            else:
                raise CommandError(E_UNKNOWN_COMMAND)
        except CommandError as exc:
            await self.error(command_id, exc.code, **exc.extra)

    async def subscribe(self, command_id: Any, params: Any) -> None:
        if not isinstance(params, dict):
            raise CommandError(E_PARAMS_REQUIRED)
        channels = params.get("channels")
        if not channels:
            raise CommandError(E_CHANNELS_REQUIRED)
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise CommandError(E_INVALID_PARAMETER)
        for channel in channels:
            if channel not in CHANNELS:
                raise CommandError(E_UNKNOWN_CHANNEL)
        tickers = self._tickers(params)
        if "orderbook_delta" in channels and not tickers:
            raise CommandError(E_TICKER_REQUIRED)
        for channel in channels:
            wanted = None if channel == "market_lifecycle_v2" else tickers
            existing = next((s for s in self.subs.values() if s.channel == channel), None)
            if existing is not None:
                # Repeat subscribe: same markets are a no-op, new markets are added (answered with `ok`).
                added = (
                    []
                    if existing.tickers is None or wanted is None
                    else [t for t in wanted if t not in existing.tickers]
                )
                if wanted is None:
                    existing.tickers = None
                elif existing.tickers is not None:
                    existing.tickers.update(added)
                await self._ack_markets(command_id, existing)
                await self._initial(existing, added, params)
                continue
            sub = _Subscription(self.next_sid, channel, None if wanted is None else set(wanted))
            self.next_sid += 1
            self.subs[sub.sid] = sub
            await self.send(
                {
                    "type": "subscribed",
                    "id": command_id,
                    "msg": {"channel": channel, "sid": sub.sid},
                }
            )
            await self._initial(sub, wanted or [], params)

    async def _initial(
        self, sub: _Subscription, tickers: Iterable[str], params: dict[str, Any]
    ) -> None:
        now = self.cursor_ms
        if sub.channel == "orderbook_delta":
            for ticker in tickers:
                await self.send_snapshot(sub, ticker)
        elif sub.channel == "ticker" and params.get("send_initial_snapshot"):
            for ticker in tickers:
                game = self.world.by_market[ticker]
                if now >= game.open_s * 1000:
                    msg = self.ticker_msg(self.world.market_path(ticker), now)
                    await self.send_market(sub, "ticker", msg)

    async def _ack_markets(self, command_id: Any, sub: _Subscription) -> None:
        sub.seq += 1
        body = {"market_tickers": sorted(sub.tickers)} if sub.tickers is not None else {}
        await self.send(
            {"type": "ok", "id": command_id, "sid": sub.sid, "seq": sub.seq, "msg": body}
        )

    async def unsubscribe(self, command_id: Any, params: Any) -> None:
        if not isinstance(params, dict):
            raise CommandError(E_PARAMS_REQUIRED)
        sids = params.get("sids")
        if not sids or not isinstance(sids, list):
            raise CommandError(E_SIDS_REQUIRED)
        for sid in sids:
            if not isinstance(sid, int) or sid not in self.subs:
                raise CommandError(E_UNKNOWN_SID)
        for sid in sids:
            sub = self.subs.pop(sid)
            sub.seq += 1
            await self.send({"type": "unsubscribed", "id": command_id, "sid": sid, "seq": sub.seq})

    async def update(self, command_id: Any, params: Any) -> None:
        if not isinstance(params, dict):
            raise CommandError(E_PARAMS_REQUIRED)
        sub = self._one_sid(params)
        action = params.get("action")
        if not action:
            raise CommandError(E_ACTION_REQUIRED)
        if action not in ("add_markets", "delete_markets", "get_snapshot"):
            raise CommandError(E_UNSUPPORTED_ACTION)
        tickers = self._tickers(params)
        if not tickers:
            raise CommandError(E_TICKER_REQUIRED)
        if sub.channel == "market_lifecycle_v2":
            raise CommandError(E_UNSUPPORTED_ACTION)
        if action == "get_snapshot":
            if sub.channel != "orderbook_delta":
                raise CommandError(E_UNSUPPORTED_ACTION)
            for ticker in tickers:
                if sub.tickers is not None and ticker not in sub.tickers:
                    raise CommandError(E_MARKET_NOT_FOUND, market_ticker=ticker)
            for ticker in tickers:
                await self.send_snapshot(sub, ticker)
            return
        if action == "add_markets":
            added = [t for t in tickers if sub.tickers is not None and t not in sub.tickers]
            if sub.tickers is not None:
                sub.tickers.update(added)
            await self._ack_markets(command_id, sub)
            await self._initial(sub, added, {"send_initial_snapshot": True})
            return
        if sub.tickers is not None:
            sub.tickers.difference_update(tickers)
        await self._ack_markets(command_id, sub)

    # -- feed -------------------------------------------------------------------------------------
    def _wanted(self) -> set[str]:
        wanted: set[str] = set()
        for sub in self.subs.values():
            if sub.channel == "market_lifecycle_v2":
                continue
            wanted |= sub.tickers if sub.tickers is not None else set(self._live_tickers())
        return wanted

    def _live_tickers(self) -> list[str]:
        now_s = self.cursor_ms // 1000
        return [
            t for g in self.world.games if g.open_s <= now_s < g.close_s for t in g.market_tickers
        ]

    def _subs_for(self, channel: str, ticker: str) -> list[_Subscription]:
        return [
            s
            for s in self.subs.values()
            if s.channel == channel and (s.tickers is None or ticker in s.tickers)
        ]

    async def advance(self, now_ms: int) -> None:
        """Send everything that happened in `(cursor, now]`, in exchange-time order."""
        t0, t1 = self.cursor_ms, now_ms
        if t1 <= t0:
            return
        events: list[tuple[int, int, str, QuoteChange | TradePrint | _LifecycleEvent]] = []
        for ticker in sorted(self._wanted()):
            game = self.world.by_market.get(ticker)
            if game is None or t1 < game.open_s * 1000:
                continue
            for ev in self.world.market_path(ticker).events_between(t0, t1):
                events.append((ev.ts_ms, 1 if isinstance(ev, TradePrint) else 0, ticker, ev))
        if any(s.channel == "market_lifecycle_v2" for s in self.subs.values()):
            for ev in self.hub.lifecycle.between(t0, t1):
                events.append((ev.ts_ms, 2, ev.ticker, ev))
        events.sort(key=lambda e: (e[0], e[1], e[2], getattr(e[3], "index", 0)))
        self.cursor_ms = t1
        for _, _, ticker, ev in events:
            if isinstance(ev, _LifecycleEvent):
                for sub in self._subs_for("market_lifecycle_v2", ticker):
                    await self.send_market(sub, "market_lifecycle_v2", self.lifecycle_msg(ev))
                continue
            path = self.world.market_path(ticker)
            if isinstance(ev, TradePrint):
                for sub in self._subs_for("trade", ticker):
                    await self.send_market(sub, "trade", self.trade_msg(path, ev))
            else:
                for sub in self._subs_for("orderbook_delta", ticker):
                    await self.send_deltas(sub, ticker, ev.ts_ms)
            for sub in self._subs_for("ticker", ticker):
                await self.send_market(sub, "ticker", self.ticker_msg(path, ev.ts_ms))

    async def send_deltas(self, sub: _Subscription, ticker: str, ts_ms: int) -> None:
        old = self.books.get(ticker, BookLadder((), ()))
        new = self.world.book_at(ticker, ts_ms)
        self.books[ticker] = new
        for side, before, after in (("yes", old.yes, new.yes), ("no", old.no, new.no)):
            b, a = dict(before), dict(after)
            for price in sorted(set(b) | set(a)):
                change = a.get(price, 0) - b.get(price, 0)
                if change == 0:
                    continue
                sign = "-" if change < 0 else ""
                msg = {
                    "market_ticker": ticker,
                    "market_id": _market_id(ticker),
                    "price_dollars": dollars(price),
                    "delta_fp": sign + count_fp(abs(change)),
                    "side": side,
                    "ts": rfc3339_ms(ts_ms),
                    "ts_ms": ts_ms,
                }
                await self.send_market(sub, "orderbook_delta", msg)

    def lifecycle_msg(self, ev: _LifecycleEvent) -> dict[str, Any]:
        game = ev.game
        msg: dict[str, Any] = {"market_ticker": ev.ticker, "event_type": ev.event_type}
        if ev.event_type == "created":
            msg.update(
                open_ts=game.open_s,
                close_ts=game.scheduled_close_s,
                additional_metadata={
                    "event_ticker": game.event_ticker,
                    "expected_expiration_ts": game.expected_expiration_s,
                    "can_close_early": True,
                },
            )
        elif ev.event_type == "close_date_updated":
            msg["close_ts"] = game.close_s
        elif ev.event_type == "determined":
            yes = game.yes_wins(ev.ticker)
            msg.update(
                determination_ts=game.determined_s,
                result="yes" if yes else "no",
                settlement_value=dollars(PIPS if yes else 0),
            )
        elif ev.event_type == "settled":
            msg["settled_ts"] = game.settled_s
        return msg

    # -- run --------------------------------------------------------------------------------------
    async def run(self) -> None:
        pinger = asyncio.create_task(self.ping_loop())
        reader = asyncio.create_task(self.read_loop())
        try:
            while not self.closed:
                try:
                    text = await asyncio.wait_for(self.commands.get(), FEED_INTERVAL_S)
                except TimeoutError:
                    text = ""
                if text is None:
                    break
                if self.stalled:
                    continue
                if text:
                    await self.handle_command(text)
                await self.advance(self.world.now_ms())
        except _Disconnect:
            with contextlib.suppress(Exception):
                await self.ws.close(code=1011)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            self.closed = True
            pinger.cancel()
            reader.cancel()

    async def read_loop(self) -> None:
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None and message.get("bytes") is not None:
                    text = message["bytes"].decode("utf-8", errors="replace")
                await self.commands.put(text or "{}")
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            self.closed = True
            await self.commands.put(None)

    async def ping_loop(self) -> None:
        interval = self.hub.faults.ping_interval
        if interval <= 0:
            return
        send_ping = _ping_sender(self.ws)
        if send_ping is None:
            log.warning("the ASGI server gives no access to Ping frames; heartbeats disabled")
            return
        while not self.closed:
            await asyncio.sleep(interval)
            if self.stalled or self.closed:
                continue
            try:
                send_ping(b"heartbeat")
                self.hub.stats.pings_sent += 1
            except Exception:  # the connection is going away; the read loop notices
                return


class _Disconnect(Exception):
    """Raised inside a session to close it as a fault."""


def _find_protocol(send: Any, depth: int = 6) -> Any:
    """Find the server protocol object behind an ASGI `send`, through middleware closures that wrap it."""
    seen: set[int] = set()
    todo = [(send, 0)]
    while todo:
        fn, level = todo.pop()
        if fn is None or id(fn) in seen or level > depth:
            continue
        seen.add(id(fn))
        owner = getattr(fn, "__self__", None)
        if owner is not None and hasattr(owner, "transport") and hasattr(owner, "conn"):
            return owner
        for cell in getattr(fn, "__closure__", None) or ():
            with contextlib.suppress(ValueError):
                if callable(cell.cell_contents):
                    todo.append((cell.cell_contents, level + 1))
    return None


def _ping_sender(websocket: WebSocket) -> Callable[[bytes], None] | None:
    """A function sending a Ping control frame on the connection behind an ASGI WebSocket.

    ASGI has no message for Ping frames, so this reaches the uvicorn protocol object that owns the `send`
    callable (websockets sans-I/O or wsproto implementations).
    """
    proto = _find_protocol(getattr(websocket, "_send", None))
    conn = getattr(proto, "conn", None)
    transport = getattr(proto, "transport", None)
    if conn is None or transport is None:
        return None
    if hasattr(conn, "send_ping") and hasattr(conn, "data_to_send"):

        def ping_websockets(payload: bytes) -> None:
            conn.send_ping(payload)
            transport.write(b"".join(conn.data_to_send()))

        return ping_websockets
    try:
        from wsproto.events import Ping  # type: ignore[import-not-found]
    except ImportError:
        return None

    def ping_wsproto(payload: bytes) -> None:
        transport.write(conn.send(Ping(payload=payload)))

    return ping_wsproto


# ---------------------------------------------------------------------------------------------- hub


class WsHub:
    """The WebSocket side of one simulator: world, verifier, faults and counters shared by sessions."""

    def __init__(self, config: SimulatorConfig, world: World, keys: KeyRing) -> None:
        """Prepare the endpoint for `world` with the gateway's key ring and the config's `ws_faults`."""
        self.config = config
        self.world = world
        self.verifier = HandshakeVerifier(keys)
        self.faults = WsFaults.parse(config.ws_faults)
        self.budget = _FaultBudget(self.faults)
        self.stats = WsServerStats()
        self._lifecycle: _LifecycleIndex | None = None

    @property
    def lifecycle(self) -> _LifecycleIndex:
        """The lifecycle index, built on first use."""
        if self._lifecycle is None:
            self._lifecycle = _LifecycleIndex(self.world)
        return self._lifecycle

    async def endpoint(self, websocket: WebSocket) -> None:
        """Serve one WebSocket connection: verify the handshake, then run a session."""
        reason = self.verifier.verify(websocket.headers, websocket.url.path)
        if reason is not None:
            self.stats.rejected += 1
            body = {
                "error": {
                    "code": "authentication_error",
                    "message": "authentication_error",
                    "details": reason,
                }
            }
            await websocket.send_denial_response(JSONResponse(body, status_code=401))
            return
        await websocket.accept()
        self.stats.connections += 1
        await _Session(self, websocket).run()

    def route(self) -> WebSocketRoute:
        """The starlette route serving `/trade-api/ws/v2`."""
        return WebSocketRoute(WS_PATH, self.endpoint)
