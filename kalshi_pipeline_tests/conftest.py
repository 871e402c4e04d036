"""Session fixtures shared by every test (a real local Kalshi exchange, throwaway Postgres databases) and the
`unit` / `integration` markers.

A test is `integration` when it needs a running service or process: it uses one of `SERVICE_FIXTURES`
(Postgres, the simulator on a socket) or is marked `@pytest.mark.integration` itself (a test that starts a
process or opens a socket on its own, or a fixture parameter such as the `postgres` warehouse). Every other
test is `unit`: offline, no process, well under a second, so `make test-unit` finishes in seconds without
Postgres. Unit tests run behind a guard that fails any network connect or bind, psycopg connect or new
process loudly, naming the test and the fix.
"""

from __future__ import annotations

import multiprocessing.process
import os
import socket
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from kalshi_pipeline_tests.simulated import simulators

PG_ADMIN_URL = os.environ.get(
    "KALSHI_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

#: Fixtures that need Postgres or a simulator on a socket: a test using one is an integration test.
SERVICE_FIXTURES = frozenset(
    {
        "pg_url",
        "fresh_pg_url",
        "warehouse_pg_url",
        "simulator",
        "start_simulator",
        "start_simulator_module",
    }
)

_NETWORK_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def pytest_configure(config: pytest.Config) -> None:
    """Register the `slow` marker; let `pytest_collection_modifyitems` decide the order xdist deals modules."""
    config.addinivalue_line(
        "markers",
        "slow: a test that takes half a minute or more of real time (daemons, minutes closing on the "
        "exchange); its module is started first so `make test`'s workers finish together",
    )
    # `--dist loadfile` deals out modules in collection order, except that by default it first sorts them by
    # their number of tests, which deals the one-test modules that run for a minute or two out last.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test `integration` (it uses a service fixture or says so) or else `unit`; order modules.

    Modules with a `slow` test come first, those with the fewest tests first (a module of one slow test is
    all waiting: the live daemon, the live UI and the topology tests take two to three minutes each), then
    the others with the most tests first (what xdist would do), each module's tests kept together and in
    their own order.
    """
    for item in items:
        uses_service = bool(SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())))
        if item.get_closest_marker("integration") is not None:
            continue
        item.add_marker(pytest.mark.integration if uses_service else pytest.mark.unit)

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    per_module = Counter(module(item) for item in items)
    slow = {module(item) for item in items if item.get_closest_marker("slow") is not None}

    def order(item: pytest.Item) -> tuple[bool, int]:
        name = module(item)
        return (name not in slow, per_module[name] if name in slow else -per_module[name])

    items.sort(key=order)


class OfflineError(RuntimeError):
    """A unit test tried to reach the network or a database, or to start a process."""


@pytest.fixture(autouse=True)
def unit_tests_stay_offline(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail any TCP/UDP connect or bind, psycopg connect or new process of a `unit` test."""
    if request.node.get_closest_marker("unit") is None:
        return
    nodeid = request.node.nodeid

    def refuse(what: object) -> OfflineError:
        return OfflineError(
            f"unit test {nodeid} tried to use {what}: mark it @pytest.mark.integration "
            "(or use the pg_url / simulator fixtures, which do)"
        )

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_bind = socket.socket.bind

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in _NETWORK_FAMILIES:
            raise refuse(f"a socket connect to {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in _NETWORK_FAMILIES:
            raise refuse(f"a socket connect to {address!r}")
        return real_connect_ex(self, address)

    def bind(self: socket.socket, address: Any) -> None:
        if self.family in _NETWORK_FAMILIES:
            raise refuse(f"a socket bind to {address!r}")
        real_bind(self, address)

    def pg_connect(*args: Any, **kwargs: Any) -> Any:
        raise refuse("PostgreSQL (psycopg.connect)")

    def popen(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        raise refuse(f"a process ({args!r})")

    def start_process(self: multiprocessing.process.BaseProcess) -> None:
        raise refuse(f"a process ({self.name})")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "bind", bind)
    # libpq opens its sockets in C, out of reach of the socket module.
    monkeypatch.setattr(psycopg, "connect", pg_connect)
    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(pg_connect))
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", classmethod(pg_connect))
    monkeypatch.setattr(subprocess.Popen, "__init__", popen)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", start_process)


@pytest.fixture(scope="session")
def simulator() -> Iterator[Any]:
    """The default simulated exchange (seed 7, two live games of 30 minutes, no rate limit) on a free port."""
    with simulators() as start:
        yield start()


@pytest.fixture
def start_simulator() -> Iterator[Callable[..., Any]]:
    """A factory for simulators with custom settings; everything it started is stopped afterwards."""
    with simulators() as start:
        yield start


@pytest.fixture(scope="module")
def start_simulator_module() -> Iterator[Callable[..., Any]]:
    """`start_simulator` shared by one test module; its simulators are stopped after the module."""
    with simulators() as start:
        yield start


def _create_database(prefix: str) -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def _drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A Postgres database created for this test session and dropped at its end."""
    try:
        name, url = _create_database("kalshi_test")
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem, said plainly
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    yield url
    _drop_database(name)


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A Postgres database of its own for one test (for tests that need an empty warehouse)."""
    name, url = _create_database("kalshi_test_fn")
    yield url
    _drop_database(name)
