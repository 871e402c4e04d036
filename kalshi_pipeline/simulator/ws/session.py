"""One WebSocket session: its subscriptions, the commands that change them, and the feed of market events.

Every `FEED_INTERVAL_S` (and after each command) the session sends everything that happened on the exchange
since its cursor, in exchange-time order, to the subscriptions that want it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kalshi_pipeline.simulator.market_model.path import BookLadder, QuoteChange, TradePrint
from kalshi_pipeline.simulator.ws import messages
from kalshi_pipeline.simulator.ws.connection import ConnectionGone, WsConnection
from kalshi_pipeline.simulator.ws.faults import SessionFaults
from kalshi_pipeline.simulator.ws.lifecycle import LifecycleEvent
from kalshi_pipeline.simulator.ws.wire import (
    CHANNELS,
    E_ACTION_REQUIRED,
    E_BUFFER_OVERFLOW,
    E_CHANNELS_REQUIRED,
    E_INVALID_PARAMETER,
    E_ONE_SID_REQUIRED,
    E_PARAMS_REQUIRED,
    E_SIDS_REQUIRED,
    E_TICKER_REQUIRED,
    E_UNKNOWN_CHANNEL,
    E_UNKNOWN_COMMAND,
    E_UNKNOWN_SID,
    E_UNPROCESSABLE,
    E_UNSUPPORTED_ACTION,
    ERROR_TEXT,
    CommandError,
)

if TYPE_CHECKING:
    from kalshi_pipeline.simulator.ws.hub import WsHub

FEED_INTERVAL_S = 0.05
"""How often a session sends what happened since its last look."""
HEARTBEAT = b"heartbeat"
"""The payload of Kalshi's Ping frames."""


@dataclass
class Subscription:
    """One subscription (sid) of a session: its channel, its markets (None = all) and its last seq.

    `yes_price` is the orderbook subscription's `use_yes_price`: NO-side levels are then reported in
    YES-leg prices (1 - the NO bid's price) in snapshots and deltas.
    """

    sid: int
    channel: str
    tickers: set[str] | None
    seq: int = 0
    yes_price: bool = False


class _Disconnect(Exception):
    """Raised inside a session to close it as a fault."""


class Session:
    """The state and loops of one accepted WebSocket connection."""

    def __init__(self, hub: WsHub, connection: WsConnection) -> None:
        """Start a session on `connection`, its cursor at the exchange's current time."""
        self.hub = hub
        self.world = hub.world
        self.connection = connection
        self.subs: dict[int, Subscription] = {}
        self.next_sid = 1
        self.cursor_ms = self.world.now_ms()
        self.books: dict[str, BookLadder] = {}
        self.commands: asyncio.Queue[str | None] = asyncio.Queue()
        self.stalled = False
        self.closed = False
        self.foreign_lifecycle_due = False
        self.faults = SessionFaults.start(hub.faults, hub.budget, hub.stats.faults_fired)

    # -- sending ------------------------------------------------------------------------------------
    async def send(self, frame: dict[str, Any]) -> None:
        """Send one JSON frame."""
        await self.connection.send_text(json.dumps(frame, separators=(",", ":")))
        self.hub.stats.messages_sent += 1

    async def send_market(self, sub: Subscription, kind: str, msg: dict[str, Any]) -> None:
        """Send one market-data message, applying seq numbering and the configured faults."""
        frame: dict[str, Any] = {"type": kind, "sid": sub.sid}
        seq = None
        if sub.channel != "ticker":
            sub.seq += 1
            seq = frame["seq"] = sub.seq
        frame["msg"] = msg
        frame["sending_ts_ms"] = self.world.now_ms()
        if self.faults.drops(sub.channel, sub.sid, seq):
            return
        await self.send(frame)
        effects = self.faults.after_message()
        if effects.malformed:
            await self.connection.send_text('{"type":"ticker","sid":' + str(sub.sid) + ',"msg":{')
        if effects.overflow:
            for other in [s for s in self.subs.values() if s.channel in ("ticker", "trade")]:
                await self.end_subscription(other, E_BUFFER_OVERFLOW)
        if effects.foreign_lifecycle:
            self.foreign_lifecycle_due = True
        if self.foreign_lifecycle_due:
            await self.send_foreign_lifecycle()
        if effects.mute_trade:
            self.faults.muted_sids = {s.sid for s in self.subs.values() if s.channel == "trade"}
        if effects.stall:
            self.stalled = True
        if effects.disconnect:
            raise _Disconnect()

    async def end_subscription(self, sub: Subscription, code: int) -> None:
        """Send a terminal error on `sub` and end it: the sid sends nothing more (Kalshi's 10 and 25).

        The error frame carries the sid and, on a sequenced channel, the sid's next seq.
        """
        frame: dict[str, Any] = {"type": "error", "sid": sub.sid}
        if sub.channel != "ticker":
            sub.seq += 1
            frame["seq"] = sub.seq
        frame["msg"] = {"code": code, "msg": ERROR_TEXT[code]}
        self.subs.pop(sub.sid, None)
        self.hub.stats.faults_fired.append(f"terminal error {code} sid={sub.sid}")
        await self.send(frame)

    async def send_foreign_lifecycle(self) -> None:
        """Send a `created` lifecycle message of a market no subscription names, scheduled days ahead."""
        wanted = self._wanted()
        now_s = self.cursor_ms // 1000
        ticker, game = next(
            (
                (t, g)
                for g in sorted(self.world.games, key=lambda g: -g.close_s)
                for t in g.market_tickers
                if t not in wanted and g.close_s > now_s
            ),
            (None, None),
        )
        msg = (
            messages.foreign_created_msg(ticker, game.open_s, game.scheduled_close_s)
            if ticker is not None and game is not None
            else messages.foreign_created_msg(
                f"KXSIMFOREIGN-{now_s}-X", now_s + 86_400, now_s + 3 * 86_400
            )
        )
        targets = [s for s in self.subs.values() if s.channel == "market_lifecycle_v2"]
        self.foreign_lifecycle_due = not targets  # sent once a lifecycle subscription exists
        for sub in targets:
            sub.seq += 1
            await self.send(
                {
                    "type": "market_lifecycle_v2",
                    "sid": sub.sid,
                    "seq": sub.seq,
                    "msg": msg,
                    "sending_ts_ms": self.world.now_ms(),
                }
            )

    async def error(self, command_id: Any, code: int, **extra: Any) -> None:
        """Answer a command with an `error` frame (with the command's id when it had one)."""
        msg: dict[str, Any] = {"code": code, "msg": ERROR_TEXT.get(code, "error"), **extra}
        frame: dict[str, Any] = {"type": "error"}
        if isinstance(command_id, int) and command_id:
            frame["id"] = command_id
        frame["msg"] = msg
        await self.send(frame)

    async def send_snapshot(self, sub: Subscription, ticker: str) -> None:
        """Send a market's order book snapshot and make it the base of later deltas."""
        book = self.world.book_at(ticker, self.cursor_ms)
        self.books[ticker] = book
        shown = messages.in_yes_prices(book) if sub.yes_price else book
        await self.send_market(sub, "orderbook_snapshot", messages.snapshot_msg(ticker, shown))

    async def send_deltas(self, sub: Subscription, ticker: str, ts_ms: int) -> None:
        """Send the deltas from the last book sent for a market to its book at `ts_ms`."""
        old = self.books.get(ticker, BookLadder((), ()))
        new = self.world.book_at(ticker, ts_ms)
        self.books[ticker] = new
        if sub.yes_price:
            old, new = messages.in_yes_prices(old), messages.in_yes_prices(new)
        for msg in messages.delta_msgs(ticker, old, new, ts_ms):
            await self.send_market(sub, "orderbook_delta", msg)

    # -- commands -----------------------------------------------------------------------------------
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
                raise CommandError(E_INVALID_PARAMETER, market_ticker=ticker)
        return list(dict.fromkeys(many))

    def _one_sid(self, params: dict[str, Any]) -> Subscription:
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
        """Parse and run one client command, answering errors with Kalshi's codes."""
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
        """`subscribe`: a new sid per channel, or markets added to the channel's existing sid."""
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
        yes_price = params.get("use_yes_price", False)
        if not isinstance(yes_price, bool):
            raise CommandError(E_INVALID_PARAMETER)
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
            sub = Subscription(self.next_sid, channel, None if wanted is None else set(wanted))
            sub.yes_price = yes_price and channel == "orderbook_delta"
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
        self, sub: Subscription, tickers: Iterable[str], params: dict[str, Any]
    ) -> None:
        now = self.cursor_ms
        if sub.channel == "orderbook_delta":
            for ticker in tickers:
                await self.send_snapshot(sub, ticker)
        elif sub.channel == "ticker" and params.get("send_initial_snapshot"):
            for ticker in tickers:
                game = self.world.by_market[ticker]
                if now >= game.open_s * 1000:
                    msg = messages.ticker_msg(self.world.market_path(ticker), now)
                    await self.send_market(sub, "ticker", msg)

    async def _ack_markets(self, command_id: Any, sub: Subscription) -> None:
        sub.seq += 1
        body = {"market_tickers": sorted(sub.tickers)} if sub.tickers is not None else {}
        await self.send(
            {"type": "ok", "id": command_id, "sid": sub.sid, "seq": sub.seq, "msg": body}
        )

    async def unsubscribe(self, command_id: Any, params: Any) -> None:
        """`unsubscribe`: drop these sids (each answer consumes a seq)."""
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
        """`update_subscription`: `add_markets`, `delete_markets` or `get_snapshot` on one sid."""
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
                    raise CommandError(E_INVALID_PARAMETER, market_ticker=ticker)
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

    # -- feed ---------------------------------------------------------------------------------------
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

    def _subs_for(self, channel: str, ticker: str) -> list[Subscription]:
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
        events: list[tuple[int, int, str, QuoteChange | TradePrint | LifecycleEvent]] = []
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
        if self.foreign_lifecycle_due:
            await self.send_foreign_lifecycle()
        for _, _, ticker, ev in events:
            if isinstance(ev, LifecycleEvent):
                for sub in self._subs_for("market_lifecycle_v2", ticker):
                    await self.send_market(sub, "market_lifecycle_v2", messages.lifecycle_msg(ev))
                continue
            path = self.world.market_path(ticker)
            if isinstance(ev, TradePrint):
                for sub in self._subs_for("trade", ticker):
                    await self.send_market(sub, "trade", messages.trade_msg(path, ev))
            else:
                for sub in self._subs_for("orderbook_delta", ticker):
                    await self.send_deltas(sub, ticker, ev.ts_ms)
            for sub in self._subs_for("ticker", ticker):
                await self.send_market(sub, "ticker", messages.ticker_msg(path, ev.ts_ms))

    # -- loops --------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Run the session until the client leaves or a fault closes it."""
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
                if self.hub.in_maintenance():
                    self.connection.close(
                        1001
                    )  # going away: Kalshi's maintenance disconnects sessions
                    break
                if text:
                    await self.handle_command(text)
                await self.advance(self.world.now_ms())
        except _Disconnect:
            self.hub.begin_outage()
            self.connection.close(1011)
        except ConnectionGone:
            pass
        finally:
            self.closed = True
            pinger.cancel()
            reader.cancel()

    async def read_loop(self) -> None:
        """Queue the client's messages as commands until it leaves (an empty message reads as `{}`)."""
        try:
            while True:
                text = await self.connection.recv()
                if text is None:
                    break
                await self.commands.put(text or "{}")
        finally:
            self.closed = True
            await self.commands.put(None)

    async def ping_loop(self) -> None:
        """Send Kalshi's heartbeat Ping every `ping_interval` seconds (none while stalled)."""
        interval = self.hub.faults.ping_interval
        if interval <= 0:
            return
        while not self.closed:
            await asyncio.sleep(interval)
            if self.stalled or self.closed:
                continue
            if not self.connection.ping(HEARTBEAT):
                return  # the connection is going away; the read loop notices
            self.hub.stats.pings_sent += 1
