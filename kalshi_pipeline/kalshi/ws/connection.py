"""One WebSocket connection to Kalshi, watched for liveness, and the counters of a client's lifetime.

Kalshi pings every 10 s; `WatchedConnection` records when any frame (data, Ping, Pong) last arrived, so the
client's watchdog can tell a silent market from a dead socket, and counts the Pings it answered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode

__all__ = ["StreamStats", "WatchedConnection", "open_connection"]

#: Largest frame accepted (Kalshi's snapshots of deep books are large, but never near this).
MAX_FRAME_BYTES = 64 * 2**20
#: Frames websockets buffers before it stops reading the socket (TCP then pushes back on Kalshi).
MAX_BUFFERED_FRAMES = 64


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


class WatchedConnection(ClientConnection):
    """A client connection that records when any frame (data, Ping, Pong) last arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_frame_monotonic = time.monotonic()
        self.stats: StreamStats | None = None

    def process_event(self, event: Any) -> None:
        """Note the arrival of every frame (and count Pings) before websockets handles it."""
        if isinstance(event, Frame):
            self.last_frame_monotonic = time.monotonic()
            if event.opcode is Opcode.PING and self.stats is not None:
                self.stats.pings_received += 1
                self.stats.ping_times.append(time.time())
                del self.stats.ping_times[:-100]
                self.stats.ping_payloads[bytes(event.data)[:32].decode("utf-8", "replace")] += 1
        super().process_event(event)


async def open_connection(
    url: str, headers: Mapping[str, str], *, open_timeout: float, stats: StreamStats
) -> WatchedConnection:
    """Open a watched connection (handshake with `headers`); websockets' own keepalive stays off.

    Raises:
        websockets.exceptions.InvalidStatus: The handshake was answered with an HTTP error status.
        websockets.exceptions.InvalidHandshake, OSError, TimeoutError: The handshake failed otherwise.
    """
    conn = await websockets.connect(
        url,
        additional_headers=dict(headers),
        create_connection=WatchedConnection,
        ping_interval=None,
        open_timeout=open_timeout,
        max_size=MAX_FRAME_BYTES,
        max_queue=MAX_BUFFERED_FRAMES,
        compression=None,
    )
    assert isinstance(conn, WatchedConnection)  # create_connection made it one
    conn.stats = stats
    return conn
