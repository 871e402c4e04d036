"""Connection-level retry of the Postgres warehouse: a refused connect is retried, a wrong database is not.

A local TCP forwarder stands in front of Postgres: closed at first (connections refused, as while a server
restarts), it starts forwarding once the first attempt has been refused, and the operation succeeds.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress
from pathlib import Path

import pytest

from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline.warehouse.errors import WarehouseUnavailable
from kalshi_pipeline.warehouse.postgres import CONNECT_RETRY_PAUSES_S


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for end in (src, dst):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


def _forward_later(
    port: int, target: tuple[str, int], opened: threading.Event, listening: threading.Event
) -> None:
    """Refuse connections on `port` until `opened` is set, then forward each one to `target`."""
    opened.wait(timeout=30)
    server = socket.create_server(("127.0.0.1", port))
    listening.set()
    server.settimeout(30)
    try:
        while True:
            client, _ = server.accept()
            upstream = socket.create_connection(target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()
    except OSError:
        pass
    finally:
        server.close()


@pytest.mark.integration  # opens sockets and connects to Postgres
def test_a_refused_connect_is_retried_until_the_server_answers(
    warehouse_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    opened, listening = threading.Event(), threading.Event()
    threading.Thread(
        target=_forward_later, args=(port, ("127.0.0.1", 5432), opened, listening), daemon=True
    ).start()
    url = warehouse_pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    assert url != warehouse_pg_url
    pauses: list[float] = []
    real_sleep = time.sleep

    def pause(seconds: float) -> None:
        # The first attempt was refused: the server "comes back" during the warehouse's pause.
        pauses.append(seconds)
        opened.set()
        assert listening.wait(timeout=30)
        real_sleep(seconds)

    monkeypatch.setattr("kalshi_pipeline.warehouse.postgres.time.sleep", pause)
    wh = open_warehouse(url)
    try:
        assert int(wh.query_df("SELECT 1 AS one")["one"].iloc[0]) == 1
    finally:
        wh.close()
    assert pauses == [CONNECT_RETRY_PAUSES_S[0]]


@pytest.mark.integration
def test_a_dead_port_fails_after_the_retries_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        started = time.monotonic()
        wh = open_warehouse(f"postgresql://postgres@127.0.0.1:{port}/nowhere")
        with pytest.raises(WarehouseUnavailable) as caught:
            wh.query_df("SELECT 1")
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "\n" not in message and "KALSHI_WAREHOUSE_URL" in message
    assert f"connect ({len(CONNECT_RETRY_PAUSES_S) + 1} attempts)" in message
    assert "rolled back" not in message  # nothing had begun
    assert elapsed >= sum(CONNECT_RETRY_PAUSES_S)


@pytest.mark.integration
def test_a_missing_database_is_not_retried(warehouse_pg_url: str) -> None:
    wh = open_warehouse(warehouse_pg_url.rsplit("/", 1)[0] + "/no_such_database_here")
    with pytest.raises(WarehouseUnavailable) as caught:
        wh.query_df("SELECT 1")
    assert "during connect:" in str(caught.value)  # one attempt: no "(n attempts)"
