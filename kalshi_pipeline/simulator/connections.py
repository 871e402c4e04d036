"""The simulator's HTTP connections, tracked so that a fault can drop one without answering.

ASGI gives an application no handle on its connection, so the `reset` fault cannot drop one from inside the
app. Instead the server runs uvicorn's own HTTP protocol wrapped in `TrackedHttpProtocol`, passed through
uvicorn's public `Config(http=...)` option: the wrapper sees each connection's asyncio transport (the standard
`asyncio.Protocol` callbacks) and files it under the peer address, which ASGI reports as `scope["client"]`.
`Connections.reset(scope)` then aborts that transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from starlette.types import Scope
from uvicorn.protocols.http.auto import AutoHTTPProtocol

Peer = tuple[str, int]


def _peer(transport: asyncio.BaseTransport) -> Peer | None:
    info = transport.get_extra_info("peername")
    if isinstance(info, (list, tuple)) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


class TrackedHttpProtocol(asyncio.Protocol):
    """uvicorn's HTTP protocol for one connection, with the connection filed in a `Connections` registry."""

    registry: Connections
    """Set on the subclass `Connections.protocol_class()` makes."""

    def __init__(self, **uvicorn_args: Any) -> None:
        """Create uvicorn's HTTP protocol with the arguments uvicorn passes to its protocol classes."""
        # uvicorn's protocol classes take its config, server state and app state as keywords.
        http_protocol = cast(Callable[..., asyncio.Protocol], AutoHTTPProtocol)
        self._http = http_protocol(**uvicorn_args)
        self._transport: asyncio.Transport | None = None
        self._peer: Peer | None = None
        self._lost: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._peer = _peer(transport)
        self._lost = asyncio.get_running_loop().create_future()
        if self._peer is not None:
            self.registry.open[self._peer] = self
        self._http.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._http.data_received(data)
        transport = self._transport
        if transport is not None and transport.get_protocol() is not self:
            self._forget()  # upgraded to a WebSocket: no longer an HTTP connection

    def eof_received(self) -> bool | None:
        return self._http.eof_received()

    def pause_writing(self) -> None:
        self._http.pause_writing()

    def resume_writing(self) -> None:
        self._http.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        self._http.connection_lost(exc)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    async def abort(self) -> None:
        """Drop the connection at once (TCP reset) and wait until uvicorn has seen it go."""
        if self._transport is None or self._lost is None:
            return
        self._transport.abort()
        await self._lost

    def _forget(self) -> None:
        if self._peer is not None and self.registry.open.get(self._peer) is self:
            del self.registry.open[self._peer]


class Connections:
    """The open HTTP connections of one simulator, by peer address."""

    def __init__(self) -> None:
        """Start with no connections; the server fills the registry through `protocol_class()`."""
        self.open: dict[Peer, TrackedHttpProtocol] = {}

    def protocol_class(self) -> type[TrackedHttpProtocol]:
        """The HTTP protocol class to give uvicorn (`Config(http=...)`), filing connections here."""
        connections = self

        class SimulatorHttpProtocol(TrackedHttpProtocol):
            """uvicorn's HTTP protocol filing its connections in this registry."""

            registry = connections

        return SimulatorHttpProtocol

    async def reset(self, scope: Scope) -> None:
        """Drop the connection a request arrived on, without any response (the `reset` fault)."""
        client = scope.get("client")
        connection = self.open.get((str(client[0]), int(client[1]))) if client else None
        if connection is None:
            raise RuntimeError(
                "simulated connection reset: the connection is unknown; serve the app through "
                "kalshi_pipeline.simulator.server so that faults can drop connections"
            )
        await connection.abort()
