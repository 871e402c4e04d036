"""The deployment's topology with real processes: a backfill survives a `kill -9` of the code server.

Each service runs as its own process, as deploy/compose.yaml and the Helm chart run them: the code location
served by `dagster api grpc` on a port, `dagster-webserver` and `dagster-daemon` loading it over gRPC through
a workspace (deploy/workspace.yaml with the port filled in), and the instance of deploy/dagster.yaml with
its storage in a fresh Postgres database. The warehouse is a second fresh Postgres database, so the Kalshi
rate budget the run workers share is its `kalshi.rate_budget` row.

The test launches an asset backfill of three archived, non-adjacent game dates through the webserver's
GraphQL API (the UI's `launchPartitionBackfill`); the assets' single-run backfill policy makes that three
runs, one per date, each in a run worker process of its own (and, when the kill cuts a launch short,
at times an automatic retry of one of them: see the test). While they run, the code server is killed
with SIGKILL and started again on the same port. Afterwards every game of the three dates is in the
warehouse with its candles, every asset check passed, no run is left unfinished, the live sensor kept
ticking, and the exchange (at Kalshi's Basic tier) answered no request with a 429. The cron automation,
which runs on the wall clock, is stopped before the daemon starts, so the outcome does not depend on the
time of day.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from kalshi_pipeline.defs.live.automation import AUTOMATION_SENSOR_NAME
from kalshi_pipeline_tests.deploy.services import DEPLOY, Deployment, wait_for

#: The simulated exchange's clock: mid-June 2026, so the 2025-26 season's winter games are archived.
SIM_NOW = datetime(2026, 6, 15, 16, 0, tzinfo=UTC)
#: Three non-adjacent game dates (4, 5 and 4 games), all settled before the historical cutoff.
GAME_DATES = ("2026-01-29", "2026-01-31", "2026-02-05")
ASSETS = ("kalshi/markets", "kalshi/candlesticks_raw", "kalshi/candlesticks")
LIVE_SENSOR = "live_games_sensor"
#: The tag Dagster gives a retry of a run: the run it retries.
PARENT_RUN_TAG = "dagster/parent_run_id"
#: Generous bounds on a busy 2-core machine; every wait ends as soon as its condition holds.
START_TIMEOUT_S = 120
BACKFILL_TIMEOUT_S = 300
UNFINISHED = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)


@pytest.fixture
def deployment(
    tmp_path: Path,
    new_database: Callable[[str], str],
    start_simulator: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Deployment, Any, str, Path]]:
    """The three services against a Basic-tier simulator pinned to `SIM_NOW`; yields (deployment, simulator,
    warehouse URL, DAGSTER_HOME)."""
    sim = start_simulator(now=SIM_NOW, live_games=0, rate_limit="basic", game_minutes=None)
    instance_db = conninfo_to_dict(new_database("kalshi_deploy_instance"))
    warehouse_url = new_database("kalshi_deploy_wh")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())

    pg_env = {
        "DAGSTER_PG_HOST": str(instance_db.get("host", "127.0.0.1")),
        "DAGSTER_PG_PORT": str(instance_db.get("port", "5432")),
        "DAGSTER_PG_DB": str(instance_db["dbname"]),
        "DAGSTER_PG_USERNAME": str(instance_db.get("user", "postgres")),
        "DAGSTER_PG_PASSWORD": str(instance_db.get("password", "")),
    }
    for name, value in pg_env.items():
        monkeypatch.setenv(name, value)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("KALSHI_", "DAGSTER_"))}
    env = {
        **base_env,
        **pg_env,
        "DAGSTER_HOME": str(home),
        "KALSHI_API_BASE_URL": sim.base_url,
        "KALSHI_WAREHOUSE_URL": warehouse_url,
        "KALSHI_LIVE_MODE": "rest",
        "KALSHI_RATE_LIMIT_TIER": "basic",
    }
    # Create the instance's tables once, before three processes race to create them.
    dg.DagsterInstance.from_config(str(home)).dispose()

    dep = Deployment(tmp_path, env)
    # The cron automation runs on the wall clock (discovery every hour on the hour): a run it launched
    # during the outage would make the outcome depend on the time of day, so it is stopped before the
    # daemon starts; the live sensor, which runs on the simulator's clock, keeps ticking.
    dep.start(stopped_sensors=[AUTOMATION_SENSOR_NAME])
    try:
        yield dep, sim, warehouse_url, home
    finally:
        dep.stop()


def expected_games(sim: Any) -> dict[str, set[str]]:
    """The simulated world's market tickers per game date of `GAME_DATES`."""
    wanted = {date.fromisoformat(d) for d in GAME_DATES}
    games: dict[str, set[str]] = {d: set() for d in GAME_DATES}
    for game in sim.app.state.world.games:
        if game.game_date in wanted:
            games[game.game_date.isoformat()].update(game.market_tickers)
    return games


def stored_markets(warehouse_url: str) -> dict[str, dict[str, int]]:
    """Per game date: each stored market's number of clean candles (0 for a market without any)."""
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute(
            """
            SELECT m.game_date::text, m.ticker, count(c.ticker)
              FROM kalshi.markets m
              LEFT JOIN kalshi.candlesticks c ON c.ticker = m.ticker
             GROUP BY 1, 2
            """
        ).fetchall()
    stored: dict[str, dict[str, int]] = {}
    for game_date, ticker, candles in rows:
        stored.setdefault(game_date, {})[ticker] = candles
    return stored


def rejected_candles(warehouse_url: str) -> int:
    """The number of rows in `kalshi.candlesticks_rejected`."""
    with psycopg.connect(warehouse_url) as conn:
        row = conn.execute("SELECT count(*) FROM kalshi.candlesticks_rejected").fetchone()
    assert row is not None
    return int(row[0])


def run_date(run: dg.DagsterRun) -> str:
    """The game date a backfill run materializes (each run is a range of one date)."""
    return run.tags.get("dagster/asset_partition_range_start", "")


def describe_runs(instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> str:
    """Each run's id, status, date and parent run, with the run-level events (launches, requeues, worker
    checks, failures) that explain how it got there."""
    lines = []
    for run in runs:
        tags = run.tags
        lines.append(
            f"{run.run_id} {run.status.value} {run_date(run)} parent={tags.get(PARENT_RUN_TAG)}"
        )
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if (
                event is not None
                and not event.is_step_event
                and not event.event_type_value.endswith("_PLANNED")
            ):
                lines.append(
                    f"  {entry.timestamp:.2f} {event.event_type_value} pid={event.pid} {event.message}"
                )
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(START_TIMEOUT_S + BACKFILL_TIMEOUT_S + 180)
def test_backfill_survives_a_code_server_kill(
    deployment: tuple[Deployment, Any, str, Path],
) -> None:
    dep, sim, warehouse_url, home = deployment
    t0 = time.monotonic()
    wait_for(
        dep.location_loaded, START_TIMEOUT_S, "the webserver loading the code location", dep.logs
    )
    t_ready = time.monotonic()

    backfill_id = dep.launch_asset_backfill(ASSETS, GAME_DATES)
    backfill_tag = {"dagster/backfill": backfill_id}

    with dg.DagsterInstance.from_config(str(home)) as instance:

        def runs(**filters: Any) -> list[dg.DagsterRun]:
            return list(instance.get_runs(filters=dg.RunsFilter(tags=backfill_tag, **filters)))

        wait_for(
            lambda: runs(statuses=[dg.DagsterRunStatus.STARTED]),
            BACKFILL_TIMEOUT_S,
            "a backfill run starting",
            dep.logs,
        )
        running_at_kill = {r.run_id for r in runs(statuses=[dg.DagsterRunStatus.STARTED])}
        daemon_log_mark = dep.daemon.log_size()
        t_kill = time.time()
        killed_pid = dep.code_server.pid
        dep.code_server.kill_hard()
        # The outage is seen: the webserver reports the location unreachable, and the backfill daemon
        # evaluates the backfill without its code location (the sensor's ticks fail meanwhile).
        wait_for(
            lambda: not dep.location_loaded(),
            START_TIMEOUT_S,
            "the webserver seeing the code server gone",
            dep.logs,
        )
        wait_for(
            lambda: (
                f"Evaluating asset backfill {backfill_id}" in dep.daemon.log_since(daemon_log_mark)
            ),
            START_TIMEOUT_S,
            "the backfill daemon evaluating the backfill while the code server is down",
            dep.logs,
        )
        t_restart = time.time()
        dep.code_server.start()

        def finished_backfill() -> str | None:
            dep.assert_running()
            backfill = instance.get_backfill(backfill_id)
            assert backfill is not None
            done = backfill.status.value not in ("REQUESTED", "CANCELING")
            return backfill.status.value if done and not runs(statuses=list(UNFINISHED)) else None

        status = wait_for(finished_backfill, BACKFILL_TIMEOUT_S, "the backfill finishing", dep.logs)
        t_done = time.monotonic()

        outage_ticks = [
            t["status"]
            for t in dep.sensor_ticks(LIVE_SENSOR)
            if t_kill < t["timestamp"] < t_restart
        ]
        # The live sensor ticks again through the restarted code server.
        wait_for(
            lambda: [
                t
                for t in dep.sensor_ticks(LIVE_SENSOR)
                if t["timestamp"] > t_restart and t["status"] in ("SKIPPED", "SUCCESS")
            ],
            START_TIMEOUT_S,
            "a sensor tick after the restart",
            dep.logs,
        )

        assert status == "COMPLETED_SUCCESS", dep.logs()
        backfill_runs = runs()
        succeeded = [r for r in backfill_runs if r.status == dg.DagsterRunStatus.SUCCESS]
        story = describe_runs(instance, backfill_runs)
        # One run per date submitted by the backfill, and every date materialized by a successful run.
        roots = {r.run_id: run_date(r) for r in backfill_runs if PARENT_RUN_TAG not in r.tags}
        assert sorted(roots.values()) == list(GAME_DATES), story
        assert sorted({run_date(r) for r in succeeded}) == list(GAME_DATES), story
        # Any other run is an automatic retry (run_retries) of its date's run. Dagster 1.13 makes one when
        # the kill cuts a launch short: the worker the dying code server had started executes the run, the
        # relaunch's worker sees it running and exits, and the new code server takes that exit for a crash
        # (`_check_for_orphaned_runs`) and fails the run. The retry upserts the same rows by the same keys.
        retries = [r for r in backfill_runs if r.run_id not in roots]
        assert all(roots.get(r.tags[PARENT_RUN_TAG]) == run_date(r) for r in retries), story
        # The run workers that were running at the kill are not the code server: they finished their runs.
        by_id = {r.run_id: r for r in backfill_runs}
        assert all(by_id[i].status == dg.DagsterRunStatus.SUCCESS for i in running_at_kill)
        stuck = list(instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED))))
        assert not stuck, [(r.run_id, r.job_name, r.status) for r in stuck]

        # Each run executed in a run worker of its own, none of them a service process.
        service_pids = {killed_pid, dep.code_server.pid, dep.webserver.pid, dep.daemon.pid}
        worker_pids: dict[str, set[int]] = {}
        checks: list[dg.AssetCheckEvaluation] = []
        for run in backfill_runs:
            if run.status != dg.DagsterRunStatus.SUCCESS:
                continue
            for entry in instance.all_logs(run.run_id):
                event = entry.dagster_event
                if event is None:
                    continue
                if event.is_step_event and event.pid is not None:
                    worker_pids.setdefault(run.run_id, set()).add(event.pid)
                if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
                    checks.append(event.event_specific_data)  # type: ignore[arg-type]  # that event's payload
        assert len(worker_pids) == len(succeeded)
        all_worker_pids = set().union(*worker_pids.values())
        assert not all_worker_pids & service_pids
        assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]

        print(
            f"\nready {t_ready - t0:.1f}s, backfill incl. kill {t_done - t_ready:.1f}s; runs "
            f"{[(r.tags.get('dagster/asset_partition_range_start'), r.status.value, r.run_id in running_at_kill) for r in backfill_runs]}; "
            f"{len(retries)} automatic retries; {len(checks)} checks; sensor ticks during the outage "
            f"{outage_ticks}"
        )

    # No data lost: every game of the three dates, both markets, each with its candles; nothing rejected.
    expected = expected_games(sim)
    stored = stored_markets(warehouse_url)
    for game_date, tickers in expected.items():
        assert set(stored.get(game_date, {})) == tickers, game_date
        assert all(stored[game_date][t] > 0 for t in tickers), stored[game_date]
    assert rejected_candles(warehouse_url) == 0

    # One Kalshi rate budget for all three run workers (the warehouse's `kalshi.rate_budget` row, at the
    # Basic tier's 20 requests/s): the exchange, metering them as one caller, never answered 429.
    with psycopg.connect(warehouse_url) as conn:
        budgets = conn.execute("SELECT name, rate_per_s FROM kalshi.rate_budget").fetchall()
    # (Basic: 200 tokens/s at 10 tokens per market-data request.)
    assert [(name.split(":", 1)[0], rate) for name, rate in budgets] == [("kalshi-read", 200.0)]
    stats = sim.app.stats.snapshot()
    totals = stats["totals"]
    assert totals["admitted"] > 0 and totals["rate_limited"] == 0, totals
    peak = max(b["admitted"] for b in stats["per_second"])
    print(f"exchange: {totals}, peak {peak} requests in one second")
