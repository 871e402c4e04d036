"""End to end under the real `dagster-daemon run`: a live game's candles arrive and advance in the warehouse.

The simulator plays one live game (and no seeded season, so the evening's real games, live or waiting for
their final reconcile, do not make the outcome depend on the time of day) on a real socket; the daemon (with
the project's dagster.yaml in a fresh DAGSTER_HOME and workspace.yaml) runs the live sensor, which discovers
the game and keeps pulling it into a fresh Postgres warehouse. The only bound is how long we poll (a
budget of 10 minutes: each run is a process of its own, and on a busy machine the three runs the check needs
took 2.5 minutes); no timing is asserted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from kalshi_pipeline.defs.live.planning import LiveSettings, games_from_frame
from kalshi_pipeline.defs.live.sensor import watched_dates
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline_tests.simulated import todays_start

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
POLL_LIMIT_S = 600


def newest_live_candle(wh_url: str) -> datetime | None:
    """Return the newest stored 1-minute candle end of the games live now (None when none is stored)."""
    wh = open_warehouse(wh_url)
    try:
        now = datetime.now(UTC)
        games = games_from_frame(wh.games(game_dates=watched_dates(now)))
        live = [t for g in games if g.is_live(now, LiveSettings()) for t in g.market_tickers]
        newest = wh.newest_candle_ts(live)
    finally:
        wh.close()
    return max(newest.values()) if newest else None


@pytest.fixture
def daemon_home(tmp_path: Path) -> Path:
    """A fresh DAGSTER_HOME holding the project's dagster.yaml, its SQLite storage created up front."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    shutil.copy(ROOT / "workspace.yaml", tmp_path / "workspace.yaml")
    dg.DagsterInstance.from_config(str(home)).dispose()
    return home


@pytest.fixture
def daemon(
    daemon_home: Path, fresh_pg_url: str, start_simulator, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`dagster-daemon run` against a simulator with one live game and a fresh Postgres warehouse."""
    sim = start_simulator(
        live_games=1, game_minutes=30, rate_limit="basic", schedule=False, now=todays_start()
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(daemon_home),
        "KALSHI_API_BASE_URL": sim.base_url,
        "KALSHI_WAREHOUSE_URL": fresh_pg_url,
        "KALSHI_RATE_BUDGET_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(tmp_path / "workspace.yaml")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc, log_path
        finally:
            # The daemon's process group holds its code server and run workers too.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.mark.timeout(POLL_LIMIT_S + 120)
def test_daemon_keeps_a_live_game_fresh(daemon, fresh_pg_url: str, daemon_home: Path) -> None:
    proc, log_path = daemon
    seen: list[datetime] = []
    deadline = time.monotonic() + POLL_LIMIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dagster-daemon exited:\n{log_path.read_text()[-3000:]}"
        newest = newest_live_candle(fresh_pg_url)
        if newest is not None and (not seen or newest > seen[-1]):
            seen.append(newest)
        if len(seen) >= 2:
            break
        time.sleep(2)
    assert len(seen) >= 2, (
        f"live candles did not arrive and advance within {POLL_LIMIT_S}s (seen {seen}); "
        f"daemon log tail:\n{log_path.read_text()[-3000:]}"
    )

    with dg.DagsterInstance.from_config(str(daemon_home)) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"kalshi/live": "true"}))
        kinds = {r.tags["kalshi/live_kind"] for r in runs}
        assert {"markets", "live"} <= kinds
        assert all(r.job_name == "kalshi_live_job" for r in runs)
        assert not [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
