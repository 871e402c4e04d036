"""From received frames to what a WebSocket client's consumer reads: messages, gap events and resyncs.

`FrameDispatcher` parses each frame, counts it, checks each sid's seq (error frames that carry a sid and seq
advance it too), keeps the order book replicas, and reports gaps: a seq jump, a terminal error (Kalshi's
error 10 or 25 ends a subscription: its sid is dead and the client must subscribe that channel again) and
messages dropped here under the "drop" overflow policy. Orderbook gaps are repaired at once (fresh snapshots, then a `resync`
event); trade and ticker gaps name the markets and the exchange-time window so the caller can backfill
those minutes from REST. Everything reaches the consumer through the `StreamBuffer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed

from kalshi_pipeline.kalshi.errors import KalshiWebSocketError, WsMessageError
from kalshi_pipeline.kalshi.ws.buffer import OverflowPolicy, StreamBuffer
from kalshi_pipeline.kalshi.ws.commands import PendingCommands
from kalshi_pipeline.kalshi.ws.connection import StreamStats
from kalshi_pipeline.kalshi.ws.messages import (
    ControlMessage,
    EventKind,
    LifecycleMessage,
    OrderbookDelta,
    OrderbookSnapshot,
    StreamEvent,
    StreamItem,
    TickerMessage,
    TradeMessage,
    WsMessage,
    parse_message,
)
from kalshi_pipeline.kalshi.ws.orderbook import OrderbookReplica
from kalshi_pipeline.kalshi.ws.subscriptions import ChannelState, Subscriptions

__all__ = ["TERMINAL_ERROR_CODES", "FrameDispatcher"]

#: Kalshi's WebSocket error codes that end a subscription (10 channel error, 25 subscription buffer
#: overflow): the sid sends nothing more and the channel must be subscribed again.
TERMINAL_ERROR_CODES: frozenset[int] = frozenset({10, 25})


class FrameDispatcher:
    """Turns a client's received frames into consumer items, keeping its streams' integrity.

    Attributes:
        books: The order book replica of each market of the orderbook channel (when books are tracked).
        connection: The connection number stamped on events (1 for the first connect, +1 per reconnect).
        last_exchange_ms: The newest exchange time seen on any channel (Unix ms).
        clock_lag_ms: The smallest delay from an envelope's `sending_ts_ms` to its receipt seen (ms; None
            before one): how far the exchange's clock trails ours at most, network time included.
    """

    def __init__(
        self,
        *,
        channels: Subscriptions,
        commands: PendingCommands,
        buffer: StreamBuffer,
        stats: StreamStats,
        overflow: OverflowPolicy,
        track_books: bool,
        request_snapshot: Callable[[Sequence[str]], Awaitable[None]],
        connected: Callable[[], bool],
        resubscribe: Callable[[Sequence[str], str], None] = lambda names, reason: None,
        use_yes_price: bool = False,
    ) -> None:
        """Wire the dispatcher to its client's channel states, pending commands, buffer and counters.

        Args:
            channels: The client's channel states (sids, seqs, wanted markets).
            commands: The client's pending commands, which receive command answers.
            buffer: The consumer's buffer.
            stats: The client's counters.
            overflow: The buffer's overflow policy.
            track_books: Whether to keep an `OrderbookReplica` per market.
            request_snapshot: Sends `get_snapshot` for some markets (the client's `request_snapshot`).
            connected: Whether a connection is open.
            resubscribe: Schedules a new subscription of channels whose sid a terminal error ended.
            use_yes_price: The orderbook subscriptions ask for NO-side levels in YES-leg prices.
        """
        self.books: dict[str, OrderbookReplica] = {}
        self.connection = 0
        self.last_exchange_ms: int | None = None
        self.clock_lag_ms: int | None = None
        self._channels = channels
        self._commands = commands
        self._buffer = buffer
        self._stats = stats
        self.overflow: OverflowPolicy = overflow
        self.track_books = track_books
        self._request_snapshot = request_snapshot
        self._connected = connected
        self._resubscribe = resubscribe
        self.use_yes_price = use_yes_price
        self._dropped_channels: dict[str, int | None] = {}
        self._background: set[asyncio.Task[None]] = set()

    def event(self, kind: EventKind, detail: str = "", **fields: Any) -> StreamEvent:
        """A stream event of the current connection, stamped now."""
        return StreamEvent(
            kind=kind,
            at_ms=int(time.time() * 1000),
            connection=self.connection,
            detail=detail,
            **fields,
        )

    async def emit(self, item: StreamItem | BaseException) -> None:
        """Hand an item to the consumer following the overflow policy."""
        if isinstance(item, (StreamEvent, BaseException)) or self.overflow == "block":
            # Events are rare and must not be lost: they always wait for room.
            await self._buffer.put(item)
            return
        if self._dropped_channels:
            self._flush_dropped()
        if not self._buffer.offer(item):
            channel = self._channels.channel_of(item.sid)
            state = self._channels.get(channel)
            if channel is not None and state is not None and channel not in self._dropped_channels:
                self._dropped_channels[channel] = self.gap_start_ms(state)

    def _flush_dropped(self) -> None:
        """After drops, emit gap events (and resync orderbooks) once the buffer has room for them."""
        if not self._buffer.has_room_for_reports():
            return
        now_ms = int(time.time() * 1000)
        for channel, since in list(self._dropped_channels.items()):
            state = self._channels.get(channel)
            self._buffer.put_nowait(
                self.event(
                    "gap",
                    f"consumer too slow: messages of {channel} dropped (overflow policy 'drop')",
                    channel=channel,
                    sid=state.sid if state else None,
                    market_tickers=state.sorted_tickers() if state else (),
                    since_ms=since,
                    until_ms=self.last_exchange_ms or now_ms,
                )
            )
            self._stats.gaps += 1
            if channel == "orderbook_delta":
                task = asyncio.get_running_loop().create_task(self.resync_orderbook("overflow"))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        self._dropped_channels.clear()

    async def resync_orderbook(self, reason: str) -> None:
        """Ask for fresh snapshots of every orderbook market and report a `resync` (after a gap)."""
        state = self._channels.get("orderbook_delta")
        if state is None or state.sid is None or not self._connected():
            return
        tickers = state.sorted_tickers()
        with contextlib.suppress(KalshiWebSocketError, ConnectionClosed):
            await self._request_snapshot(tickers)
            self._stats.resyncs += 1
            await self.emit(
                self.event(
                    "resync",
                    f"requested orderbook snapshots after {reason}",
                    channel="orderbook_delta",
                    sid=state.sid,
                    market_tickers=tickers,
                )
            )

    async def handle(self, raw: str | bytes) -> None:
        """Handle one received frame (a malformed one is counted and reported, then skipped)."""
        received_ms = int(time.time() * 1000)
        self._stats.frames += 1
        try:
            message = parse_message(raw, received_ms=received_ms)
        except WsMessageError as exc:
            self._stats.malformed += 1
            self._stats.errors += 1
            await self.emit(self.event("error", f"malformed frame skipped: {exc}"))
            return
        self._stats.by_type[message.type] += 1
        if message.sending_ts_ms is not None:
            lag = message.received_ms - message.sending_ts_ms
            self.clock_lag_ms = lag if self.clock_lag_ms is None else min(self.clock_lag_ms, lag)
        if isinstance(message, ControlMessage):
            await self._handle_control(message)
            return
        # The stream clock: the message's exchange time, never later than its receipt (a clock ahead of
        # ours, or a bad field, must not push a later gap's start into the future).
        clock_ms = None if message.ts_ms is None else min(message.ts_ms, message.received_ms)
        if clock_ms is not None:
            self.last_exchange_ms = max(self.last_exchange_ms or 0, clock_ms)
        channel = self._channels.channel_of(message.sid)
        if message.seq is not None and message.sid is not None:
            await self._check_seq(message.sid, message.seq, message.ts_ms, channel)
        state = self._channels.get(channel)
        if state is not None:
            state.last_message_ms = message.received_ms
            if clock_ms is not None:
                state.last_ts_ms = clock_ms
        if self.track_books:
            self._track_book(message)
        if isinstance(
            message,
            (TickerMessage, TradeMessage, OrderbookSnapshot, OrderbookDelta, LifecycleMessage),
        ):
            await self.emit(message)  # an `UnknownMessage` is counted in stats, never emitted

    def _track_book(self, message: WsMessage) -> None:
        if isinstance(message, OrderbookSnapshot):
            book = self.books.setdefault(
                message.market_ticker,
                OrderbookReplica(message.market_ticker, yes_prices=self.use_yes_price),
            )
            book.apply_snapshot(message)
        elif isinstance(message, OrderbookDelta):
            book = self.books.setdefault(
                message.market_ticker,
                OrderbookReplica(message.market_ticker, yes_prices=self.use_yes_price),
            )
            if not book.stale:
                book.apply_delta(message)

    async def _check_seq(self, sid: int, seq: int, ts_ms: int | None, channel: str | None) -> None:
        state = self._channels.get(channel)
        if state is None:
            return
        expected = Subscriptions.advance_seq(state, seq)
        if expected is None:
            return
        self._stats.gaps += 1
        await self.emit(
            self.event(
                "gap",
                f"seq gap on sid {sid}: expected {expected}, got {seq}",
                channel=channel,
                sid=sid,
                market_tickers=state.sorted_tickers(),
                since_ms=self.gap_start_ms(state),
                until_ms=ts_ms,
            )
        )
        if channel == "orderbook_delta":
            await self.resync_orderbook(f"seq gap (expected {expected}, got {seq})")

    async def _handle_control(self, message: ControlMessage) -> None:
        if message.type == "subscribed":
            self._channels.confirm(message.channel, message.sid)
        elif message.type == "ok" and message.seq is not None and message.sid is not None:
            channel = self._channels.channel_of(message.sid)
            await self._check_seq(message.sid, message.seq, None, channel)
        elif message.type == "error":
            self._stats.errors += 1
            if message.seq is not None and message.sid is not None:
                # An error on a sid consumes one of its seqs (2026 protocol).
                await self._check_seq(
                    message.sid, message.seq, None, self._channels.channel_of(message.sid)
                )
            if not self._commands.is_awaited(message.id):
                await self.emit(
                    self.event(
                        "error",
                        f"Kalshi error {message.code}: {message.message}",
                        code=message.code,
                        sid=message.sid,
                    )
                )
            if message.code in TERMINAL_ERROR_CODES and message.id is None:
                await self._end_subscriptions(message)
        self._commands.route(message)

    async def _end_subscriptions(self, message: ControlMessage) -> None:
        """A terminal error ended a sid (or, without a sid, every sid): report gaps, subscribe again."""
        if message.sid is not None:
            channel = self._channels.channel_of(message.sid)
            states = [s for s in self._channels if s.name == channel]
        else:
            states = [s for s in self._channels if s.sid is not None]
        if not states:
            return
        reason = f"Kalshi error {message.code} ({message.message}) ended the subscription"
        for state in states:
            await self.report_lost(
                state,
                f"{reason}: messages are lost until it is subscribed again",
                code=message.code,
            )
            if state.name == "orderbook_delta":
                for book in self.books.values():
                    book.stale = True  # the new subscription starts with fresh snapshots
        self._resubscribe([s.name for s in states], reason)

    def gap_start_ms(self, state: ChannelState) -> int | None:
        """Where a gap of a channel starts (`ChannelState.gap_start_ms` on the exchange's clock as seen)."""
        return state.gap_start_ms(self.clock_lag_ms)

    async def report_lost(
        self, state: ChannelState, detail: str, *, code: int | None = None
    ) -> None:
        """A subscription lost messages until it is subscribed again: an open `gap`, and its sid forgotten.

        The gap (ticker and trade channels only; orderbooks resync instead) starts at the channel's own
        `gap_start_ms` and stays open (`until_ms` None): the consumer backfills up to the first message
        of the new subscription. Every path that loses a subscription (a terminal error, a
        resubscription of a silent channel, a reconnect) reports it here.
        """
        if state.name in ("ticker", "trade"):
            self._stats.gaps += 1
            await self.emit(
                self.event(
                    "gap",
                    detail,
                    channel=state.name,
                    sid=state.sid,
                    market_tickers=state.sorted_tickers(),
                    since_ms=self.gap_start_ms(state),
                    until_ms=None,
                    code=code,
                )
            )
        state.sid, state.last_seq = None, None
