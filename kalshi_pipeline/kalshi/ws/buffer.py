"""The bounded buffer between a WebSocket client's socket reader and its consumer.

Under the "block" policy a full buffer stops the reader (TCP pushes back on Kalshi, which may answer with
error 25); under "drop" a market-data message that finds the buffer full is dropped, and the client reports
a gap for its channel. Stream events and errors are never dropped: they always wait for room.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from kalshi_pipeline.kalshi.ws.connection import StreamStats
from kalshi_pipeline.kalshi.ws.messages import StreamItem

__all__ = ["OverflowPolicy", "StreamBuffer"]

OverflowPolicy = Literal["block", "drop"]
"""What the reader does when the consumer's buffer is full."""


class StreamBuffer:
    """A bounded FIFO of stream items (and of the exception that ends the stream), with counters.

    Attributes:
        size: Capacity in items.
        blocked: Whether the reader is waiting for room right now (the liveness watchdog then waits too).
    """

    def __init__(self, size: int, stats: StreamStats) -> None:
        """Create an empty buffer of `size` items that records depth and waits in `stats`."""
        self.size = size
        self.blocked = False
        self._stats = stats
        self._queue: asyncio.Queue[StreamItem | BaseException] = asyncio.Queue(maxsize=size)

    def depth(self) -> int:
        """Items waiting for the consumer."""
        return self._queue.qsize()

    def has_room_for_reports(self) -> bool:
        """Whether the consumer caught up enough (half the buffer free) to take the gap reports of drops."""
        return self._queue.qsize() <= self.size // 2

    async def put(self, item: StreamItem | BaseException) -> None:
        """Add an item, waiting for room when the buffer is full."""
        if self._queue.full():
            started = time.monotonic()
            self.blocked = True
            try:
                await self._queue.put(item)
            finally:
                self.blocked = False
                self._stats.blocked_seconds += time.monotonic() - started
        else:
            self._queue.put_nowait(item)
        self._note_depth()

    def offer(self, item: StreamItem) -> bool:
        """Add an item if there is room; otherwise count it as dropped and return False."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._stats.dropped += 1
            return False
        finally:
            self._note_depth()
        return True

    def put_nowait(self, item: StreamItem) -> None:
        """Add an item the caller knows has room (a gap report after `has_room_for_reports`)."""
        self._queue.put_nowait(item)

    async def get(self, timeout: float | None = None) -> StreamItem:
        """The next item; raises the exception that ended the stream, or TimeoutError after `timeout`."""
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def get_nowait(self) -> StreamItem | None:
        """The next item without waiting (None when empty); raises the exception that ended the stream."""
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def _note_depth(self) -> None:
        self._stats.max_queue_depth = max(self._stats.max_queue_depth, self._queue.qsize())
