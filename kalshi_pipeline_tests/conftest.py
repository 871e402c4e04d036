"""Session fixtures shared by every test: a real local Kalshi exchange and a throwaway Postgres database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from kalshi_pipeline_tests.simulated import simulators

PG_ADMIN_URL = os.environ.get(
    "KALSHI_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


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
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def _drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
