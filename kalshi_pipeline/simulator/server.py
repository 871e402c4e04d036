"""Running the simulated exchange: a real uvicorn server, in the foreground or in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import uvicorn

from kalshi_pipeline.simulator.app import SimulatorApp, build_app
from kalshi_pipeline.simulator.config import SimulatorConfig


def _uvicorn_config(app: SimulatorApp, config: SimulatorConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=app.connections.protocol_class(),
        ws=app.ws_hub.protocol_class(),
        host=config.host,
        port=config.port,
        log_level=config.log_level.lower(),
        lifespan="on",
        access_log=config.log_level.lower() in ("debug", "trace"),
        timeout_graceful_shutdown=2,
    )


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "127.0.0.1", "localhost", "::") else host


class RunningSimulator:
    """A simulator serving on a real socket in a background thread; stop it with `.stop()` or `with`."""

    def __init__(
        self,
        app: SimulatorApp,
        server: uvicorn.Server,
        thread: threading.Thread,
        host: str,
        port: int,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server = server
        self._thread = thread

    @property
    def base_url(self) -> str:
        """The REST base URL, e.g. `http://127.0.0.1:8765/trade-api/v2`."""
        return f"http://{_client_host(self.host)}:{self.port}/trade-api/v2"

    @property
    def ws_url(self) -> str:
        """The WebSocket URL, e.g. `ws://127.0.0.1:8765/trade-api/ws/v2`."""
        return f"ws://{_client_host(self.host)}:{self.port}/trade-api/ws/v2"

    def stop(self) -> None:
        """Shut the server down and wait for its thread (idempotent)."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningSimulator(base_url={self.base_url!r})"


def serve_in_thread(config: SimulatorConfig, timeout_s: float = 30.0) -> RunningSimulator:
    """Start a simulator in a daemon thread; return once it accepts connections (`port=0`: any free port)."""
    app = build_app(config)
    sock = _listen(config)
    port = sock.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(app, config))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # surfaced to the caller below
            errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    thread = threading.Thread(target=run, name=f"kalshi-simulator-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if errors or not thread.is_alive():
            raise RuntimeError(
                f"the simulator failed to start: {errors[0] if errors else 'thread exited'}"
            )
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the simulator did not start within {timeout_s} s")
        time.sleep(0.01)
    return RunningSimulator(app, server, thread, config.host, port)


def _listen(config: SimulatorConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {config.host}:{config.port}: {exc}") from exc
    return sock


def serve_forever(
    config: SimulatorConfig, announce: Callable[[str, str], None] | None = None
) -> None:
    """Serve in the foreground until interrupted; `announce(base_url, ws_url)` is called once bound."""
    app = build_app(config)
    sock = _listen(config)
    port = sock.getsockname()[1]
    host = _client_host(config.host)
    if announce is not None:
        announce(f"http://{host}:{port}/trade-api/v2", f"ws://{host}:{port}/trade-api/ws/v2")
    try:
        uvicorn.Server(_uvicorn_config(app, config)).run(sockets=[sock])
    finally:
        sock.close()
