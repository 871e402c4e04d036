"""One WebSocket connection, spoken with the `websockets` library's Sans-I/O protocol over an asyncio transport.

Kalshi's server sends a Ping control frame with payload `heartbeat` every 10 s, and ASGI has no message for
Ping frames. So the endpoint does not run through ASGI: uvicorn's public `Config(ws=...)` option names the
protocol class uvicorn creates for an upgrade request, and `WsHub.protocol_class()` gives it a subclass of
`WsConnection`. uvicorn hands over the connection's transport (`connection_made`) and replays the request
(`data_received`); from then on `websockets.server.ServerProtocol` (websockets' documented Sans-I/O API)
parses and writes frames, answers client Pings and runs the closing handshake, and sends our Pings.

Sessions use `recv`, `send_text`, `ping` and `close`; the server's shutdown uses `shutdown`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, Protocol, cast

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

log = logging.getLogger("kalshi_pipeline.simulator.ws")

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""The largest client message accepted (uvicorn's default `ws_max_size`)."""
CLOSE_TIMEOUT_S = 10.0
"""How long a closing handshake may take before the transport is aborted."""


class ConnectionGone(Exception):
    """The connection closed, or began closing, before a message could be sent."""


class WsEndpoint(Protocol):
    """What a connection serves: a decision on the upgrade request, then a session."""

    def refusal(self, connection: WsConnection, request: Request) -> Response | None:
        """An HTTP response refusing the upgrade, or None to accept it."""
        ...

    def serve(self, connection: WsConnection) -> Awaitable[None]:
        """Run the session of an accepted connection until it ends."""
        ...


class WsConnection(asyncio.Protocol):
    """One server-side WebSocket connection on an asyncio transport."""

    endpoint: WsEndpoint
    """Set on the subclass `WsHub.protocol_class()` makes."""

    def __init__(self, **uvicorn_args: Any) -> None:
        """Start a connection; uvicorn's arguments (its config, server and app state) are not needed."""
        self._protocol = ServerProtocol(
            # The permessage-deflate settings uvicorn's own WebSocket protocols use.
            extensions=[
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
            ],
            max_size=MAX_MESSAGE_BYTES,
            logger=log,
        )
        self._transport: asyncio.Transport | None = None
        self._incoming: asyncio.Queue[str | None] = asyncio.Queue()
        self._writable = asyncio.Event()
        self._writable.set()
        self._fragments: list[bytes] = []
        self._binary = False
        self._session: asyncio.Task[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    @property
    def open(self) -> bool:
        """Whether messages can be sent (the handshake is done and no close frame was sent or received)."""
        return self._protocol.state is State.OPEN

    # -- what a session uses ------------------------------------------------------------------------
    async def recv(self) -> str | None:
        """The next message from the client (a binary one decoded as UTF-8); None once the client left."""
        return await self._incoming.get()

    async def send_text(self, text: str) -> None:
        """Send one text message, waiting while the transport's buffer is full; ConnectionGone if closed."""
        await self._writable.wait()
        if not self.open:
            raise ConnectionGone("the WebSocket connection is closed")
        self._protocol.send_text(text.encode())
        self._flush()

    def ping(self, payload: bytes) -> bool:
        """Send a Ping control frame now; False (nothing sent) when the connection is not open."""
        if not self.open:
            return False
        self._protocol.send_ping(payload)
        self._flush()
        return True

    def close(self, code: int = CloseCode.NORMAL_CLOSURE) -> None:
        """Start the closing handshake; the transport closes on the client's answer or after a timeout."""
        if self.open:
            self._protocol.send_close(code)
            self._flush()
            self._arm_close_timer()

    def shutdown(self) -> None:
        """Close at once because the server stops: a close frame 1012 (service restart), then the transport."""
        if self.open:
            self._protocol.send_close(CloseCode.SERVICE_RESTART)
            self._flush()
        self._close_transport()

    def reject(self, status: int, body: str, content_type: str) -> Response:
        """An HTTP response refusing the upgrade (for `WsEndpoint.refusal`)."""
        response = self._protocol.reject(status, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = content_type
        return response

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._protocol.receive_data(data)
        self._process()

    def eof_received(self) -> None:
        self._protocol.receive_eof()
        self._process()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.receive_eof()  # idempotent; the protocol's state becomes CLOSED
        self._incoming.put_nowait(None)
        self._writable.set()  # a paused transport that is lost never resumes
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None

    # -- internals ----------------------------------------------------------------------------------
    def _process(self) -> None:
        events = self._protocol.events_received()
        self._flush()  # automatic answers: Pongs, the closing handshake
        for event in events:
            if isinstance(event, Request):
                self._on_request(event)
            elif isinstance(event, Frame):
                self._on_frame(event)
        if self._protocol.close_expected():
            self._arm_close_timer()

    def _on_request(self, request: Request) -> None:
        response = self._protocol.accept(request)
        if response.status_code == 101:
            response = self.endpoint.refusal(self, request) or response
        self._protocol.send_response(response)
        self._flush()
        if response.status_code != 101:
            self._close_transport()
            return
        self._session = asyncio.get_running_loop().create_task(self._run_session())

    async def _run_session(self) -> None:
        try:
            await self.endpoint.serve(self)
        except Exception:
            log.exception("the WebSocket session failed")
        # As uvicorn does when an ASGI WebSocket app returns: drop the connection unless closing.
        if self._close_timer is None:
            self._close_transport()

    def _on_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            self._incoming.put_nowait(None)
            return
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._binary = frame.opcode is Opcode.BINARY
            self._fragments = [bytes(frame.data)]
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
        else:
            return  # Pings are answered by the protocol; Pongs need nothing
        if not frame.fin:
            return
        data = b"".join(self._fragments)
        self._fragments = []
        if not self.open:
            return  # the session is past its close: drop late messages
        if self._binary:
            self._incoming.put_nowait(data.decode("utf-8", errors="replace"))
            return
        try:
            self._incoming.put_nowait(data.decode())
        except UnicodeDecodeError:
            self._protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
            self._flush()
            self._arm_close_timer()

    def _flush(self) -> None:
        transport = self._transport
        for data in self._protocol.data_to_send():
            if transport is None or transport.is_closing():
                continue
            if data:
                transport.write(data)
            else:
                self._close_transport()  # the protocol's end of stream: the server closes TCP first

    def _close_transport(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and self._transport is not None:
            self._close_timer = asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT_S, self._transport.abort
            )
