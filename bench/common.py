"""What the benchmark scripts share: a throwaway Postgres database, a free port, percentile summaries."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

# Bench scripts run as `python bench/<name>.py`; they share the tests' helpers (`kalshi_pipeline_tests`),
# which are not installed, so the repository root goes on the path when this module is imported first.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

PG_ADMIN = os.environ.get(
    "KALSHI_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
#: `DAGSTER_EVENT_BATCH_SIZE` of the deployments (deploy/helm/values.yaml, deploy/compose.yaml).
DEPLOYED_EVENT_BATCH = 100


def deployed_instance_env(url: str) -> dict[str, str]:
    """The `DAGSTER_PG_*` variables deploy/dagster.yaml reads, for instance storage in the database `url`."""
    parts = urlsplit(url)
    return {
        "DAGSTER_PG_HOST": parts.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parts.port or 5432),
        "DAGSTER_PG_DB": parts.path.lstrip("/"),
        "DAGSTER_PG_USERNAME": parts.username or "postgres",
        "DAGSTER_PG_PASSWORD": parts.password or "",
    }


def create_database(prefix: str, admin_url: str = PG_ADMIN) -> str:
    """Create a uniquely named Postgres database and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def drop_database(url: str, admin_url: str = PG_ADMIN) -> None:
    """Drop the database at `url` (made by `create_database`), closing its connections."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def temporary_database(prefix: str, admin_url: str = PG_ADMIN) -> Iterator[str]:
    """Create a Postgres database for one benchmark, yield its URL, and drop it afterwards."""
    url = create_database(prefix, admin_url)
    try:
        yield url
    finally:
        drop_database(url, admin_url)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
