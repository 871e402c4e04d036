"""Fixtures for warehouse tests: a fresh, schema-ready warehouse on each dialect."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from kalshi_pipeline.warehouse import Warehouse, open_warehouse
from kalshi_pipeline_tests.conftest import PG_ADMIN_URL


@pytest.fixture(scope="session")
def warehouse_pg_url() -> Iterator[str]:
    """A Postgres database for the warehouse tests of this session (each test empties schema `kalshi`)."""
    name = f"kalshi_test_wh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.integration)])
def wh_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A URL of an empty warehouse: a DuckDB file in tmp_path or a Postgres database without schema `kalshi`."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'kalshi.duckdb'}"
    url: str = request.getfixturevalue("warehouse_pg_url")
    # Dropping the schema is much cheaper than creating a database per test.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS kalshi CASCADE")
    return url


@pytest.fixture
def wh(wh_url: str) -> Iterator[Warehouse]:
    """An open warehouse with its schema in place."""
    warehouse = open_warehouse(wh_url)
    warehouse.ensure_schema()
    yield warehouse
    warehouse.close()
