"""One WebSocket connection to Kalshi: opened with a signed handshake, watched for liveness; and the
counters of a client's lifetime.

`connect_once` opens a connection or classifies the failure (a 401/403 refusal is fatal, others are
retried); `watch` aborts a connection silent for too long. Kalshi pings every 10 s; `WatchedConnection` records when any frame (data, Ping, Pong) last arrived, so the
client's watchdog can tell a silent market from a dead socket, and counts the Pings it answered.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode

from kalshi_pipeline.kalshi.errors import AUTH_HINT, KalshiAuthError

if TYPE_CHECKING:
    from kalshi_pipeline.kalshi.ws.dispatch import FrameDispatcher

__all__ = [
    "ConnectFailure",
    "StreamStats",
    "WatchedConnection",
    "connect_once",
    "open_connection",
    "watch",
]

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


async def watch(
    conn: WatchedConnection,
    heartbeat_timeout: float,
    consumer_blocked: Callable[[], bool],
    dispatch: FrameDispatcher,
) -> str | None:
    """Abort `conn` when no frame at all arrived for `heartbeat_timeout` seconds; return the reason.

    While the consumer's buffer is full the client stops reading, so silence then is not the socket's
    fault and does not count.
    """
    while True:
        await asyncio.sleep(min(1.0, heartbeat_timeout / 4))
        silent = time.monotonic() - conn.last_frame_monotonic
        if consumer_blocked():
            conn.last_frame_monotonic = time.monotonic()
            continue
        if silent > heartbeat_timeout:
            await dispatch.emit(
                dispatch.event(
                    "heartbeat_timeout",
                    f"no frame (data or Ping) for {silent:.1f} s; reconnecting",
                )
            )
            conn.transport.abort()
            return f"heartbeat timeout after {silent:.1f} s"


@dataclass(frozen=True)
class ConnectFailure:
    """A failed connect: one line for the `error` event, the HTTP status of a refused handshake, and
    the error that ends the client when the handshake was refused for its credentials (401/403)."""

    detail: str
    status: int | None = None
    fatal: KalshiAuthError | None = None


async def connect_once(
    url: str,
    path: str,
    signer: Callable[[str, str], Mapping[str, str]] | None,
    *,
    open_timeout: float,
    stats: StreamStats,
) -> WatchedConnection | ConnectFailure:
    """Sign and open one connection (the handshake re-signed each time), or say why it failed."""
    try:
        headers = dict(signer("GET", path)) if signer else {}
        return await open_connection(url, headers, open_timeout=open_timeout, stats=stats)
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            error = KalshiAuthError(
                f"WebSocket handshake to {url} rejected with HTTP {status}: {AUTH_HINT}; "
                f"the handshake signs GET {path}",
                status=status,
                method="GET",
                path=path,
            )
            return ConnectFailure(str(error).split(";")[0], status, error)
        return ConnectFailure(f"handshake failed: HTTP {status}", status)
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        return ConnectFailure(f"connect failed: {type(exc).__name__}: {exc}")
