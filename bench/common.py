"""What the benchmark scripts share: a throwaway Postgres database, a free port, a fresh process per
scenario, the header of a results file."""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import socket
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any
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


def _report(queue: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        queue.put(("ok", fn(*args)))
    except BaseException as exc:  # report anything, the parent decides
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def in_fresh_process(
    fn: Callable[..., Any], *args: Any, env: Mapping[str, str] | None = None
) -> Any:
    """`fn(*args)` in a freshly spawned process (its own imports, its own peak RSS), with `env` added to
    that process's environment; returns what `fn` returns, or raises RuntimeError with its error."""
    env = dict(env or {})
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_report, args=(queue, fn, args))
        proc.start()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    status, payload = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{fn.__name__} failed: {payload}")
    return payload


def results_header(script: str, argv: list[str] | None) -> dict[str, Any]:
    """The command that produced a results file, the machine and its load, and when."""
    return {
        "command": f".venv/bin/python bench/{script} "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
