"""End to end under the real `dagster-daemon run`: a live game's candles arrive and advance in the warehouse,
and keep advancing after a live run's worker is killed with kill -9 (run monitoring fails that run).

The simulator plays one live game (and no seeded season, so the evening's real games, live or waiting for
their final reconcile, do not make the outcome depend on the time of day) on a real socket; the daemon (with
the project's dagster.yaml in a fresh DAGSTER_HOME and workspace.yaml) runs the live sensor, which discovers
the game and keeps pulling it into a fresh Postgres warehouse. Once the first candle is stored, a started live
run's worker is killed; the killed run must be failed and the game's newest candle must then move past where
it stood (a minute closing on the exchange and a later live run pulling it), which proves both that the
candles advance and that they keep advancing after the kill. The only bound is how long we poll (a budget of
10 minutes per phase: each run is a process of its own); no timing is asserted.
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
from dagster._core.events import DagsterEventType

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


@pytest.mark.slow
@pytest.mark.timeout(3 * POLL_LIMIT_S + 120)
def test_daemon_keeps_a_live_game_fresh(daemon, fresh_pg_url: str, daemon_home: Path) -> None:
    proc, log_path = daemon
    first: datetime | None = None
    deadline = time.monotonic() + POLL_LIMIT_S
    while first is None and time.monotonic() < deadline:
        assert proc.poll() is None, f"dagster-daemon exited:\n{log_path.read_text()[-3000:]}"
        first = newest_live_candle(fresh_pg_url)
        if first is None:
            time.sleep(2)
    assert first is not None, (
        f"no live candle arrived within {POLL_LIMIT_S}s; "
        f"daemon log tail:\n{log_path.read_text()[-3000:]}"
    )

    with dg.DagsterInstance.from_config(str(daemon_home)) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"kalshi/live": "true"}))
        kinds = {r.tags["kalshi/live_kind"] for r in runs}
        assert {"markets", "live"} <= kinds
        assert all(r.job_name == "kalshi_live_job" for r in runs)
        assert not [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]

    # A live run's worker killed with kill -9: run monitoring fails that run (the launcher sees the pid
    # gone) and the sensor carries on, so the game's candles keep advancing.
    deadline = time.monotonic() + POLL_LIMIT_S
    with dg.DagsterInstance.from_config(str(daemon_home)) as instance:
        killed = _kill_a_started_live_run(instance, deadline)
        assert killed is not None, "no live run was caught running within the budget"
        run_id, pid = killed
        while time.monotonic() < deadline:
            run = instance.get_run_by_id(run_id)
            if run is not None and run.status == dg.DagsterRunStatus.FAILURE:
                break
            time.sleep(1)
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE, (
            f"the killed live run {run_id} (worker {pid}) was not failed; "
            f"daemon log tail:\n{log_path.read_text()[-3000:]}"
        )
        # Either run monitoring (the launcher finds the pid gone) or the code server that started the
        # worker (it sees its child exit) fails the run; both say so in the run's event log.
        said = [e.message for e in instance.all_logs(run_id) if e.dagster_event is not None]
        assert any(
            f"run worker pid {pid} is gone" in m or "[DagsterApiServer]" in m for m in said
        ), said
    after_kill = newest_live_candle(fresh_pg_url)
    assert after_kill is not None and after_kill >= first
    deadline = time.monotonic() + POLL_LIMIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dagster-daemon exited:\n{log_path.read_text()[-3000:]}"
        newest = newest_live_candle(fresh_pg_url)
        if newest is not None and newest > after_kill:
            break
        time.sleep(2)
    newest = newest_live_candle(fresh_pg_url)
    assert newest is not None and newest > after_kill, (
        f"live candles did not advance after the killed run (first {first}, at the kill "
        f"{after_kill}, newest {newest}); daemon log tail:\n{log_path.read_text()[-3000:]}"
    )
    # The killed run is the only one that failed, before or after the kill.
    with dg.DagsterInstance.from_config(str(daemon_home)) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"kalshi/live": "true"}))
        failed = [r.run_id for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
    assert failed == [run_id], failed


def _kill_a_started_live_run(
    instance: dg.DagsterInstance, deadline: float
) -> tuple[str, int] | None:
    """SIGKILL the worker of a STARTED live run; return (run id, pid) once one died mid-run."""
    while time.monotonic() < deadline:
        for run in instance.get_runs(
            filters=dg.RunsFilter(
                tags={"kalshi/live": "true"}, statuses=[dg.DagsterRunStatus.STARTED]
            ),
            limit=5,
        ):
            records = instance.get_records_for_run(
                run.run_id, of_type=DagsterEventType.RUN_START, limit=1
            ).records
            event = records[0].event_log_entry.dagster_event if records else None
            if event is None or event.pid is None:
                continue
            try:
                os.kill(event.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            time.sleep(1)
            after = instance.get_run_by_id(run.run_id)
            # A run that finished just before the kill does not count; catch another. (The code server
            # that started the worker may already have failed the run by now.)
            if after is not None and after.status != dg.DagsterRunStatus.SUCCESS:
                return run.run_id, event.pid
        time.sleep(0.2)
    return None
