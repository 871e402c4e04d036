"""The WebSocket side of one simulator: what its sessions share, and the endpoint its connections serve."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import unquote

from websockets.http11 import Request, Response

from kalshi_pipeline.simulator.auth import KeyRing
from kalshi_pipeline.simulator.config import SimulatorConfig
from kalshi_pipeline.simulator.paths import WS_PATH
from kalshi_pipeline.simulator.world import World
from kalshi_pipeline.simulator.ws.connection import WsConnection
from kalshi_pipeline.simulator.ws.faults import FaultBudget, WsFaults
from kalshi_pipeline.simulator.ws.handshake import HandshakeVerifier
from kalshi_pipeline.simulator.ws.lifecycle import LifecycleIndex
from kalshi_pipeline.simulator.ws.session import Session


@dataclass
class WsServerStats:
    """Counters of the server side (all sessions), for tests and the probe."""

    connections: int = 0
    rejected: int = 0
    pings_sent: int = 0
    messages_sent: int = 0
    faults_fired: list[str] = field(default_factory=list)


class WsHub:
    """The world, handshake verifier, faults and counters shared by the sessions of one simulator."""

    def __init__(self, config: SimulatorConfig, world: World, keys: KeyRing) -> None:
        """Prepare the endpoint for `world` with the gateway's key ring and the config's `ws_faults`."""
        self.config = config
        self.world = world
        self.verifier = HandshakeVerifier(keys)
        self.faults = WsFaults.parse(config.ws_faults)
        self.budget = FaultBudget(self.faults)
        self.stats = WsServerStats()
        self.connections: set[WsConnection] = set()
        self._lifecycle: LifecycleIndex | None = None
        self.outage_since_ms: int | None = None

    @property
    def lifecycle(self) -> LifecycleIndex:
        """The lifecycle index, built on first use."""
        if self._lifecycle is None:
            self._lifecycle = LifecycleIndex(self.world)
        return self._lifecycle

    def protocol_class(self) -> type[WsConnection]:
        """The WebSocket protocol class to give uvicorn (`Config(ws=...)`), serving this hub."""
        hub = self

        class SimulatorWsConnection(WsConnection):
            """A WebSocket connection served by this hub."""

            endpoint = hub

        return SimulatorWsConnection

    def begin_outage(self) -> None:
        """Start refusing handshakes after a fault disconnect, when `outage_trades` asks for an outage."""
        if self.faults.outage_trades:
            self.outage_since_ms = self.world.now_ms()
            self.stats.faults_fired.append(f"outage since {self.outage_since_ms}")

    def _outage_continues(self) -> bool:
        """Whether fewer than `outage_trades` trades printed on live markets since the outage began."""
        if self.outage_since_ms is None:
            return False
        now_ms = self.world.now_ms()
        now_s = now_ms // 1000
        printed = sum(
            len(self.world.market_path(t).trade_range(self.outage_since_ms, now_ms))
            for g in self.world.games
            if g.open_s <= now_s < g.close_s
            for t in g.market_tickers
        )
        if printed < self.faults.outage_trades:
            return True
        self.stats.faults_fired.append(f"outage over at {now_ms} after {printed} trades")
        self.outage_since_ms = None
        return False

    def in_maintenance(self) -> bool:
        """Whether a maintenance window is in effect: sessions are closed and handshakes refused."""
        return self.world.maintenance.window_at(self.world.now_ms()) is not None

    def refusal(self, connection: WsConnection, request: Request) -> Response | None:
        """403 for any other path, 503 in maintenance or an outage, 401 for a bad signature, else None."""
        path = unquote(request.path.partition("?")[0])
        if path != WS_PATH:
            return connection.reject(403, "", "text/plain; charset=utf-8")
        if self.in_maintenance() or self._outage_continues():
            return connection.reject(503, "", "text/plain; charset=utf-8")
        # The first value of a repeated header counts, as with Starlette's headers.
        headers = {k.lower(): v for k, v in reversed(list(request.headers.raw_items()))}
        reason = self.verifier.verify(headers, path)
        if reason is None:
            return None
        self.stats.rejected += 1
        error = {
            "code": "authentication_error",
            "message": "authentication_error",
            "details": reason,
        }
        body = json.dumps({"error": error}, ensure_ascii=False, separators=(",", ":"))
        return connection.reject(401, body, "application/json")

    async def serve(self, connection: WsConnection) -> None:
        """Run the session of an accepted connection."""
        self.stats.connections += 1
        self.connections.add(connection)
        try:
            await Session(self, connection).run()
        finally:
            self.connections.discard(connection)

    def shutdown(self) -> None:
        """Close every open connection (code 1012), as the server stops."""
        for connection in list(self.connections):
            connection.shutdown()
