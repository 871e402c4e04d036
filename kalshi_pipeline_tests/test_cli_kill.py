"""Work stops when the process the user started stops: kill -9 of `dagster asset materialize`.

Every job runs on the in-process executor, so the command has no step process to orphan. The test starts a
real backfill of two game dates (seeded exchange at the basic rate limit, a fresh Postgres warehouse),
kills the command with SIGKILL once candles are being written, and checks that no process of it survives,
that none of its database sessions (the rate budget's included) stays open, and that no row is written
afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kalshi_pipeline_tests.conftest import PG_ADMIN_URL
from kalshi_pipeline_tests.processes import descendants, running, wait_for

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:200]
    except OSError:
        return "?"


def sessions(db_url: str) -> int:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [db_url.rsplit("/", 1)[1]]
        ).fetchone()
    return int(row[0]) if row else 0


def stored_rows(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        found = conn.execute("SELECT to_regclass('kalshi.candlesticks_raw')").fetchone()
        if found is None or found[0] is None:
            return 0
        row = conn.execute("SELECT count(*) FROM kalshi.candlesticks_raw").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.timeout(300)
def test_kill_9_of_materialize_leaves_nothingrunning(
    start_simulator: Callable[..., Any], fresh_pg_url: str, tmp_path: Path
) -> None:
    sim = start_simulator(
        rate_limit="basic", now=datetime.fromisoformat("2026-01-15T12:00:00-05:00")
    )
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "KALSHI_API_BASE_URL": sim.base_url,
        "KALSHI_WAREHOUSE_URL": fresh_pg_url,
        "KALSHI_RATE_LIMIT_TIER": "basic",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [
            *(str(BIN / "dagster"), "asset", "materialize", "-m", "kalshi_pipeline.definitions"),
            *("--select", "kalshi/markets,kalshi/candlesticks_raw,kalshi/candlesticks"),
            *("--partition-range", "2026-01-10...2026-01-11"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: stored_rows(fresh_pg_url) > 0, 180), "no candle was written"
        assert proc.poll() is None, "the backfill finished before it could be killed"
        kids = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    # Dagster's compute-log tailers (`poll_compute_logs`) poll their parent and exit on their own.
    commands = {p: _cmdline(p) for p in kids}
    assert wait_for(lambda: not [p for p in kids if running(p)], 30), (
        f"processes of the command survived: {[commands[p] for p in kids if running(p)]}"
    )
    # No session left means nothing of the command can still write (or hold the rate budget's row).
    assert wait_for(lambda: sessions(fresh_pg_url) == 0, 30), "a database session stayed open"
