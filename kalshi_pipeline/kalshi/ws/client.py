"""`KalshiWebSocket`: a signed, reconnecting WebSocket session with seq tracking and resyncs.

The client keeps one connection to `/trade-api/ws/v2` and one subscription (sid) per channel. Consumers
iterate over it and receive typed market-data messages interleaved with `StreamEvent`s that describe the
connection (connect, disconnect, gap, resync, error).

This module holds the public API (lifecycle, iteration, commands) and the connection loop: a reconnect
re-signs the handshake, resets all sid/seq trackers (they are per connection), resubscribes and emits a `gap`
per channel from its own last message (or its subscribe); backoff is exponential with full jitter, and a
watchdog reconnects a socket silent for longer than `heartbeat_timeout`. A terminal error (Kalshi's 10 or
25) ends one subscription while the connection lives on: that channel is subscribed again after a backoff
of its own (`resubscribe`). `dispatch.FrameDispatcher` handles each frame (seq checks, gaps, resyncs, books).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed

from kalshi_pipeline.kalshi.config import WS_PATH, KalshiConfig, validate_ws_url
from kalshi_pipeline.kalshi.errors import KalshiConfigError, KalshiWebSocketError
from kalshi_pipeline.kalshi.ws.buffer import OverflowPolicy, StreamBuffer
from kalshi_pipeline.kalshi.ws.commands import PendingCommands
from kalshi_pipeline.kalshi.ws.connection import (
    ConnectFailure,
    StreamStats,
    WatchedConnection,
    connect_once,
    watch,
)
from kalshi_pipeline.kalshi.ws.dispatch import FrameDispatcher
from kalshi_pipeline.kalshi.ws.messages import ControlMessage, StreamItem
from kalshi_pipeline.kalshi.ws.orderbook import OrderbookReplica
from kalshi_pipeline.kalshi.ws.resubscribe import Resubscriber
from kalshi_pipeline.kalshi.ws.subscriptions import (
    ChannelState,
    Subscriptions,
    group_by_markets,
    subscribe_params,
)

__all__ = ["KalshiWebSocket", "Signer"]

Signer = Callable[[str, str], Mapping[str, str]]
"""A function `(method, path) -> headers` producing Kalshi's three `KALSHI-ACCESS-*` headers."""


class KalshiWebSocket:
    """A reconnecting Kalshi WebSocket session; iterate it for messages and stream events.

    ```python
    ws = KalshiWebSocket.from_config(config)
    await ws.subscribe(["ticker", "trade"], ["KXNBAGAME-25DEC19SASATL-ATL"])
    async with ws:
        async for item in ws:
            ...
    ```

    Args:
        url: The WebSocket URL (`ws://` or `wss://`; a REST base URL is mapped to its WebSocket URL).
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
            None retries forever. Handshakes refused with HTTP 503 (the exchange unavailable, as in a
            maintenance window) never count: the client retries them with capped backoff until it is back.
        track_books: Maintain an `OrderbookReplica` per market of the orderbook channel in `.books`.
        use_yes_price: Subscribe the orderbook with `use_yes_price` (Kalshi then sends NO-side levels in
            YES-leg prices, 1 - the NO bid; the delivered messages keep the prices as sent, the replicas
            in `.books` hold NO-leg prices either way). Kalshi's default is false.
        rng: Source of the reconnect jitter.
    """

    def __init__(
        self,
        url: str,
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
        use_yes_price: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        if overflow not in ("block", "drop"):
            raise KalshiConfigError(f"overflow must be 'block' or 'drop', got {overflow!r}")
        if queue_size < 1:
            raise KalshiConfigError(f"queue_size must be >= 1, got {queue_size!r}")
        self.url = validate_ws_url(url)
        self.path = urlsplit(self.url).path or WS_PATH
        self._signer = signer
        self.queue_size = queue_size
        self.heartbeat_timeout = heartbeat_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.open_timeout = open_timeout
        self.ack_timeout = ack_timeout
        self.max_reconnects = max_reconnects
        self.use_yes_price = use_yes_price
        self._rng = rng or random.Random()
        self.stats = StreamStats()
        self._channels = Subscriptions()
        self._buffer = StreamBuffer(queue_size, self.stats)
        self._commands = PendingCommands()
        self._dispatch = FrameDispatcher(
            channels=self._channels,
            commands=self._commands,
            buffer=self._buffer,
            stats=self.stats,
            overflow=overflow,
            track_books=track_books,
            request_snapshot=self.request_snapshot,
            connected=lambda: self.connected,
            resubscribe=lambda names, reason: self._resubscriber.schedule(names, reason),
            use_yes_price=use_yes_price,
        )
        self._resubscriber = Resubscriber(
            channels=self._channels,
            subscribe=lambda group: self._send_subscribe(group, wait=True),
            unsubscribe=lambda sids: self._command("unsubscribe", {"sids": sids}),
            report_lost=self._dispatch.report_lost,
            emit=self._dispatch.emit,
            event=self._dispatch.event,
            connection=lambda: self._dispatch.connection,
            connected=lambda: self.connected,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            rng=self._rng,
        )
        self.books: dict[str, OrderbookReplica] = self._dispatch.books
        self._conn: WatchedConnection | None = None
        self._connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._fatal: BaseException | None = None

    @property
    def overflow(self) -> OverflowPolicy:
        """What the reader does when the consumer's buffer is full ("block" or "drop")."""
        return self._dispatch.overflow

    @property
    def track_books(self) -> bool:
        """Whether an `OrderbookReplica` is kept per market of the orderbook channel."""
        return self._dispatch.track_books

    @property
    def connection_number(self) -> int:
        """The current connection's number (1 for the first connect, +1 per reconnect; 0 before)."""
        return self._dispatch.connection

    @classmethod
    def from_config(
        cls, config: KalshiConfig, *, url: str | None = None, **kwargs: Any
    ) -> KalshiWebSocket:
        """Build a client from a `KalshiConfig`: its signer, and `url` or else `config.websocket_url()`.

        Raises:
            KalshiConfigError: The private key cannot be loaded or the URL is not a WebSocket URL.
        """
        signer = config.signer()
        target = url or config.websocket_url()
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
        self._resubscriber.cancel()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
            self._runner = None
        self._commands.fail_all(
            KalshiWebSocketError("the WebSocket client was closed"), forget=True
        )

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
        return self._buffer.depth()

    # ----------------------------------------------------------------------------------- iterate

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamItem]:
        self.start()
        while True:
            yield await self._buffer.get()

    def next_nowait(self) -> StreamItem | None:
        """Return the next buffered message or event without waiting (None when the buffer is empty)."""
        return self._buffer.get_nowait()

    async def next_item(self, timeout: float | None = None) -> StreamItem:
        """Return the next message or event (raises TimeoutError after `timeout` seconds)."""
        self.start()
        return await self._buffer.get(timeout)

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
        Subscriptions.validate(names, tickers)
        fresh: list[ChannelState] = []
        for name in names:
            state, is_new, added = self._channels.want(name, tickers)
            if is_new:
                fresh.append(state)
            elif added and self.connected and state.sid is not None:
                await self._command(
                    "update_subscription",
                    {"sids": [state.sid], "market_tickers": sorted(added), "action": "add_markets"},
                )
        if fresh and self.connected:
            for group in group_by_markets(fresh):
                await self._send_subscribe(group, wait=True)
        sids = self._channels.as_sids()
        return {name: sid for name in names if (sid := sids.get(name)) is not None}

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        """Unsubscribe from channels and forget them (waits for `unsubscribed` when connected)."""
        sids = []
        for name in channels:
            state = self._channels.forget(name)
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

    async def resubscribe(self, channels: Iterable[str], reason: str) -> None:
        """Replace these channels' subscriptions with new ones (a channel that went silent on a live socket).

        The old sids are unsubscribed (errors ignored: a sid may be dead), each ticker or trade channel
        reports a `gap` and all are subscribed again. Does nothing while disconnected.
        """
        if self.connected:
            await self._resubscriber.replace(list(channels), reason)

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        """Ask Kalshi for this connection's subscriptions: `[{"channel": ..., "sid": ...}, ...]`."""
        replies = await self._command("list_subscriptions", None)
        body = replies[0].body if replies else None
        return list(body) if isinstance(body, list) else []

    def subscriptions(self) -> dict[str, int | None]:
        """The channels this client wants, with their sid on the current connection (None = not yet)."""
        return self._channels.as_sids()

    def channel_activity(self, channel: str) -> tuple[int | None, int | None]:
        """A channel's latest message: `(received at, exchange time)` in Unix ms (None before any)."""
        state = self._channels.get(channel)
        return (None, None) if state is None else (state.last_message_ms, state.last_ts_ms)

    def subscribed_tickers(self, channel: str) -> set[str] | None:
        """The markets wanted on a channel (None = all markets)."""
        state = self._channels.get(channel)
        return None if state is None or state.tickers is None else set(state.tickers)

    async def _send(
        self, cmd: str, params: dict[str, Any] | None, command_id: int | None = None
    ) -> int:
        if self._conn is None:
            raise KalshiWebSocketError(f"cannot send {cmd}: not connected")
        if command_id is None:
            command_id = self._commands.new_id()
        payload: dict[str, Any] = {"id": command_id, "cmd": cmd}
        if params is not None:
            payload["params"] = params
        await self._conn.send(json.dumps(payload))
        return command_id

    async def _command(
        self, cmd: str, params: dict[str, Any] | None, *, channels: set[str] | None = None
    ) -> list[ControlMessage]:
        command_id, future = self._commands.await_answer(channels)
        try:
            await self._send(cmd, params, command_id)
            return await asyncio.wait_for(future, self.ack_timeout)
        finally:
            self._commands.forget(command_id)

    async def _send_subscribe(self, states: list[ChannelState], *, wait: bool) -> None:
        """Subscribe channels sharing one market filter with a single command.

        One command means Kalshi starts all of them at the same instant, so a ticker snapshot and the trade
        stream that follows it leave no hole between them. The send time is where a gap of a channel that
        has delivered nothing yet starts.
        """
        params = subscribe_params(states, use_yes_price=self.use_yes_price)
        names = {s.name for s in states}
        for state in states:
            state.subscribe_sent_ms = int(time.time() * 1000)
        if wait:
            await self._command("subscribe", params, channels=names)
        else:
            self._commands.expect_channels(await self._send("subscribe", params), names)

    # ----------------------------------------------------------------------------------- connection

    async def _run(self) -> None:
        failures = waived = 0  # waived: failures that were 503 refusals (never a reason to give up)
        while not self._closing:
            conn = await connect_once(
                self.url, self.path, self._signer, open_timeout=self.open_timeout, stats=self.stats
            )
            if isinstance(conn, ConnectFailure):
                failures += 1
                waived += conn.status == 503
                await self._dispatch.emit(
                    self._dispatch.event("error", conn.detail, code=conn.status)
                )
                if conn.fatal is not None:
                    self._fatal = conn.fatal
                    await self._dispatch.emit(conn.fatal)
                    return
            else:
                lived = await self._serve_connection(conn)
                failures = 0 if lived else failures + 1
                waived = 0 if lived else waived
            if self._closing:
                return
            if self.max_reconnects is not None and failures - waived > self.max_reconnects:
                self._fatal = KalshiWebSocketError(
                    f"gave up on {self.url} after {failures} failed connects"
                )
                await self._dispatch.emit(self._fatal)
                return
            ceiling = min(self.backoff_max, self.backoff_initial * 2 ** max(failures - 1, 0))
            await asyncio.sleep(
                self._rng.uniform(0, ceiling) if failures else self.backoff_initial / 4
            )

    async def _serve_connection(self, conn: WatchedConnection) -> bool:
        """Run one connection until it drops; return whether it delivered data (backoff resets)."""
        self._dispatch.connection += 1
        self.stats.connects += 1
        self._conn = conn
        self._channels.reset_connection()
        self._resubscriber.reset()
        for book in self.books.values():
            book.stale = True
        await self._dispatch.emit(self._dispatch.event("connect", f"connected to {self.url}"))
        if self._dispatch.connection > 1:
            for state in self._channels:
                await self._dispatch.report_lost(
                    state,
                    "reconnected: messages sent while disconnected are lost "
                    "(until the first message of the new connection)",
                )
        frames_before = self.stats.frames
        reason = "closed"
        watchdog = asyncio.create_task(
            watch(conn, self.heartbeat_timeout, lambda: self._buffer.blocked, self._dispatch)
        )
        try:
            for group in group_by_markets(self._channels):
                await self._send_subscribe(group, wait=False)
            self._connected.set()
            async for raw in conn:
                await self._dispatch.handle(raw)
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
            self._commands.fail_all(KalshiWebSocketError(f"connection lost: {reason}"))
            if not watchdog.cancelled() and watchdog.done() and watchdog.result():
                reason = watchdog.result() or reason
            if not self._closing:
                await self._dispatch.emit(self._dispatch.event("disconnect", reason))
        return self.stats.frames > frames_before
