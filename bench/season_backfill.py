"""Benchmark: a whole season's asset backfill under the real daemon, next to live games, at Kalshi's limit.

Reproduces the production shape on this machine: the simulator (subprocess, `--rate-limit basic`: 20
requests/s, burst 40, one bucket per caller, and every process here is the same caller) with live games, a
fresh DAGSTER_HOME holding the project's dagster.yaml, `dagster-daemon run -w workspace.yaml` (live sensor and
schedules running) and KALSHI_WAREHOUSE_URL pointing at a fresh Postgres database (so the shared rate budget
is its `kalshi.rate_budget` row). Once the live sensor has pulled the live games, it launches an asset
backfill of `kalshi/markets`, `kalshi/candlesticks_raw` and `kalshi/candlesticks` over the season's game
dates exactly as the UI's Materialize dialog does (the `launchPartitionBackfill` GraphQL mutation, here via
the `dagster-graphql -w workspace.yaml` CLI; dagster 1.13 has no `dagster asset backfill` command), waits
until the daemon reports the backfill done and reads:

- the backfill: status, wall time (`wall_s`: as Dagster records it, from the mutation creating the backfill
  to the daemon marking it done; `wall_polled_s`: by this script's clock, from starting the dagster-graphql
  command to seeing it done, polled every second), number of runs (the BackfillPolicy), failed runs;
- the warehouse: markets, raw and clean candles, rejected candles for the range, against the simulator's
  schedule (games x 2 markets);
- every other run in the window (live sensor, schedules) and its status (those still queued or running when
  the backfill is done are counted apart, `in_flight_at_end`: the script stops the daemon then);
- the client's side: `api_requests`, `api_retries`, `api_rate_limited` from the runs' materialization
  metadata;
- the exchange's side, from the simulator's `GET /_sim/stats`: requests, admitted requests and 429s, and the
  peak admitted requests over any 1-second bin and any 10 consecutive seconds against the tier limit.

    .venv/bin/python bench/season_backfill.py [--start YYYY-MM-DD --end YYYY-MM-DD] [--timeout-minutes 25]
        [--instance local|deployed]

`--instance deployed` runs the daemon on deploy/dagster.yaml (Dagster's storage in a fresh Postgres database)
with the deployments' `DAGSTER_EVENT_BATCH_SIZE`, as run on Kubernetes; the default is the project's
dagster.yaml (SQLite storage under DAGSTER_HOME), as `make dev` runs.

Defaults: the simulated 2025-26 regular season (first to last game date of the simulator's schedule).
Results in bench/results/season_backfill.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    DEPLOYED_EVENT_BATCH,
    create_database,
    deployed_instance_env,
    drop_database,
    free_port,
)
from live import BIN, ROOT, _stop

RESULTS = ROOT / "bench" / "results" / "season_backfill.json"
ASSETS = ("kalshi/markets", "kalshi/candlesticks_raw", "kalshi/candlesticks")
TIER = "basic"
TIER_REQUESTS_PER_S = 20.0
TIER_BURST_REQUESTS = 40.0

LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
    ... on ConflictingExecutionParamsError { message }
    ... on PresetNotFoundError { message }
    ... on NoModeProvidedError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def season_range(
    seed: int, live_games: int, game_minutes: float, season: int
) -> tuple[date, date, int]:
    """Return the first and last game date of the season starting in `season`, and its number of games."""
    from kalshi_pipeline.simulator import SimulatorConfig
    from kalshi_pipeline.simulator.world import World

    world = World(SimulatorConfig(seed=seed, live_games=live_games, game_minutes=game_minutes))
    dates = [
        g.game_date
        for g in world.games
        if date(season, 8, 1) <= g.game_date < date(season + 1, 8, 1)
        and g.event_ticker.startswith("KXNBAGAME-")
    ]
    return min(dates), max(dates), len(dates)


def games_in_range(seed: int, live_games: int, game_minutes: float, start: date, end: date) -> int:
    """Return how many KXNBAGAME games the simulator's schedule holds in [start, end]."""
    from kalshi_pipeline.simulator import SimulatorConfig
    from kalshi_pipeline.simulator.world import World

    world = World(SimulatorConfig(seed=seed, live_games=live_games, game_minutes=game_minutes))
    return sum(
        start <= g.game_date <= end and g.event_ticker.startswith("KXNBAGAME-") for g in world.games
    )


def launch_backfill(env: dict[str, str], start: str, end: str) -> str:
    """Launch the asset backfill as the UI does; return its id or raise with Dagster's answer."""
    params = {
        "partitionsByAssets": [
            {
                "assetKey": {"path": key.split("/")},
                "partitions": {"range": {"start": start, "end": end}},
            }
            for key in ASSETS
        ],
        "title": f"season backfill {start}...{end}",
    }
    answer_file = Path(env["DAGSTER_HOME"]) / "launch_backfill.json"
    out = subprocess.run(
        [
            str(BIN / "dagster-graphql"),
            "-w",
            "workspace.yaml",
            "-t",
            LAUNCH_BACKFILL,
            "-v",
            json.dumps({"params": params}),
            "-o",
            str(answer_file),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        answer = json.loads(answer_file.read_text())["data"]["launchPartitionBackfill"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(
            f"dagster-graphql failed: {out.stdout[-800:]} {out.stderr[-800:]}"
        ) from exc
    if answer.get("__typename") != "LaunchBackfillSuccess":
        raise RuntimeError(f"backfill not launched: {answer}")
    return str(answer["backfillId"])


def _run_info(instance: Any, record: Any) -> dict[str, Any]:
    """Summarize one run record, with the client's counters from its materializations (one per asset)."""
    import dagster as dg

    run = record.dagster_run
    per_asset: dict[str, dict[str, int]] = {}
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        mat = entry.asset_materialization
        if mat is None:
            continue
        # A single-run range emits one materialization per partition, all with the asset's one metadata.
        key = mat.asset_key.to_user_string()
        if key in per_asset:
            continue
        per_asset[key] = {
            name: int(mat.metadata[name].value)
            for name in ("api_requests", "api_retries", "api_rate_limited")
            if name in mat.metadata
        }
    tags = run.tags
    if "dagster/backfill" in tags:
        kind = "backfill"
    elif tags.get("kalshi/live") == "true":
        kind = f"live:{tags.get('kalshi/live_kind', '?')}"
    elif "dagster/schedule_name" in tags:
        kind = f"schedule:{tags['dagster/schedule_name']}"
    else:
        kind = "other"
    return {
        "run_id": run.run_id,
        "kind": kind,
        "status": run.status.value,
        "partition_range": [
            tags.get("dagster/asset_partition_range_start"),
            tags.get("dagster/asset_partition_range_end"),
        ],
        "created": record.create_timestamp.timestamp(),
        "started": record.start_time,
        "ended": record.end_time,
        "api": per_asset,
    }


def _api_totals(runs: list[dict[str, Any]]) -> dict[str, int]:
    totals = {"api_requests": 0, "api_retries": 0, "api_rate_limited": 0}
    for run in runs:
        for counters in run["api"].values():
            for name, value in counters.items():
                totals[name] += value
    return totals


def rate_peaks(bins: list[dict[str, Any]], first: int, last: int) -> dict[str, Any]:
    """Peak admitted requests in any 1-s bin and any 10 consecutive seconds of [first, last]."""
    admitted = {b["second"]: b["admitted"] for b in bins}
    series = [admitted.get(s, 0) for s in range(first, last + 1)]
    windows = [sum(series[i : i + 10]) for i in range(max(1, len(series) - 9))]
    seconds = max(1, last - first + 1)
    return {
        "seconds": seconds,
        "admitted": sum(series),
        "mean_per_s": round(sum(series) / seconds, 2),
        "peak_1s": max(series, default=0),
        "peak_10s_per_s": round(max(windows, default=0) / 10, 2),
        "seconds_above_limit": sum(v > TIER_REQUESTS_PER_S for v in series),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=None)
    parser.add_argument("--end", type=date.fromisoformat, default=None)
    parser.add_argument(
        "--season", type=int, default=2025, help="season start year (default 2025-26)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=RESULTS, help="Where the results go.")
    parser.add_argument("--live-games", type=int, default=2)
    parser.add_argument("--game-minutes", type=float, default=60.0)
    parser.add_argument("--timeout-minutes", type=float, default=25.0)
    parser.add_argument("--warmup-timeout", type=float, default=180.0)
    parser.add_argument(
        "--instance",
        choices=["local", "deployed"],
        default="local",
        help="local: the project's dagster.yaml (SQLite storage); deployed: deploy/dagster.yaml with its "
        "storage in a fresh Postgres database and the deployments' DAGSTER_EVENT_BATCH_SIZE.",
    )
    args = parser.parse_args()

    first, last, season_games = season_range(
        args.seed, args.live_games, args.game_minutes, args.season
    )
    start, end = args.start or first, args.end or last
    games = games_in_range(args.seed, args.live_games, args.game_minutes, start, end)
    whole_season = (start, end) == (first, last)
    print(
        f"range {start}...{end}: {games} games ({'whole' if whole_season else 'part of the'} "
        f"{args.season}-{(args.season + 1) % 100:02d} season {first}...{last}, {season_games} games)"
    )

    port = free_port()
    wh_url = create_database("season_bench")
    home = Path(tempfile.mkdtemp(prefix="season_bench_home_"))
    instance_env: dict[str, str] = {}
    instance_url: str | None = None
    if args.instance == "deployed":
        instance_url = create_database("season_bench_instance")
        instance_env = {
            **deployed_instance_env(instance_url),
            "DAGSTER_EVENT_BATCH_SIZE": str(DEPLOYED_EVENT_BATCH),
        }
        os.environ.update(instance_env)  # this process reads the instance too
    config = "deploy/dagster.yaml" if instance_url else "dagster.yaml"
    shutil.copy(ROOT / config, home / "dagster.yaml")
    root_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **instance_env,
        "DAGSTER_HOME": str(home),
        "KALSHI_API_BASE_URL": f"{root_url}/trade-api/v2",
        "KALSHI_WAREHOUSE_URL": wh_url,
        "KALSHI_LIVE_MODE": "rest",
        "KALSHI_RATE_LIMIT_TIER": TIER,
    }
    os.environ["DAGSTER_HOME"] = str(home)
    logs = Path(tempfile.mkdtemp(prefix="season_bench_logs_"))
    import dagster as dg

    # Create the instance's storage once, before the daemon and the CLI race to create it.
    dg.DagsterInstance.from_config(str(home)).dispose()
    procs: list[subprocess.Popen[Any]] = []
    stack = contextlib.ExitStack()
    backfill_id: str | None = None
    status = "NOT_LAUNCHED"
    t_launch = t_done = time.time()
    backfill: Any = None
    stats: dict[str, Any] = {}
    progress: list[dict[str, Any]] = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    str(BIN / "kalshi-pipeline"),
                    "simulator",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--seed",
                    str(args.seed),
                    "--rate-limit",
                    TIER,
                    "--live-games",
                    str(args.live_games),
                    "--game-minutes",
                    str(args.game_minutes),
                ],
                cwd=ROOT,
                env=env,
                start_new_session=True,
                stdout=stack.enter_context(open(logs / "simulator.log", "w")),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
        )
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{root_url}/_sim/health", timeout=1).raise_for_status()
                break
            time.sleep(0.2)
        procs.append(
            subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                cwd=ROOT,
                env=env,
                start_new_session=True,
                stdout=stack.enter_context(open(logs / "daemon.log", "w")),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
        )

        # Warm-up: the live sensor's first successful live run (discovery rides along).
        t0 = time.time()
        with dg.DagsterInstance.get() as instance:
            while time.time() - t0 < args.warmup_timeout:
                live = instance.get_run_records(
                    filters=dg.RunsFilter(
                        tags={"kalshi/live": "true"}, statuses=[dg.DagsterRunStatus.SUCCESS]
                    ),
                    limit=1,
                )
                if live:
                    break
                time.sleep(2)
        print(f"first successful live run after {time.time() - t0:.1f}s")

        t_launch = time.time()
        backfill_id = launch_backfill(env, start.isoformat(), end.isoformat())
        print(f"backfill {backfill_id} launched")
        deadline = t_launch + args.timeout_minutes * 60
        terminal = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
        with dg.DagsterInstance.get() as instance:
            while time.time() < deadline:
                backfill = instance.get_backfill(backfill_id)
                status = backfill.status.value if backfill else "MISSING"
                runs = instance.get_run_records(
                    filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})
                )
                open_runs = [r for r in runs if not r.dagster_run.is_finished]
                progress.append(
                    {
                        "t": round(time.time() - t_launch, 1),
                        "status": status,
                        "runs": len(runs),
                        "open_runs": len(open_runs),
                    }
                )
                print(
                    f"t={progress[-1]['t']:7.1f}s backfill={status} runs={len(runs)} "
                    f"open={len(open_runs)}",
                    flush=True,
                )
                if status in terminal and not open_runs:
                    break
                time.sleep(1)
        t_done = time.time()
        stats = httpx.get(f"{root_url}/_sim/stats", timeout=30).json()
    finally:
        for proc in reversed(procs):
            _stop(proc)
        stack.close()

    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records()
        runs = [_run_info(instance, r) for r in records]
    window = [r for r in runs if r["created"] <= t_done and (r["ended"] or t_done) >= t_launch]
    backfill_runs = [r for r in runs if r["kind"] == "backfill"]
    others = [r for r in window if r["kind"] != "backfill"]
    # Runs still queued or running when the backfill is seen done are cut short by this script stopping the
    # daemon right after (a dequeue in flight fails with "Tried to start a run on a server after telling it
    # to shut down"): reported apart, not as the pipeline's failures.
    concurrent = [r for r in others if r["ended"] is not None and r["ended"] <= t_done]
    in_flight = [r for r in others if r not in concurrent]

    counts: dict[str, int] = {}
    with psycopg.connect(wh_url) as conn:
        for table in ("markets", "candlesticks_raw", "candlesticks", "candlesticks_rejected"):
            row = conn.execute(
                f"SELECT count(*) FROM kalshi.{table} WHERE game_date BETWEEN %s AND %s",
                (start, end),
            ).fetchone()
            counts[table] = int(row[0]) if row else 0
        dup = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM kalshi.candlesticks GROUP BY ticker, period_interval,"
            " end_period_ts HAVING count(*) > 1) d"
        ).fetchone()
    drop_database(wh_url)
    if instance_url:
        drop_database(instance_url)

    bins = stats.get("per_second", [])
    first_s, launch_s, done_s = (
        (bins[0]["second"] if bins else int(t_launch)),
        int(t_launch),
        int(t_done),
    )
    in_window = [b for b in bins if launch_s <= b["second"] <= done_s]
    # The backfill's own wall time, as Dagster records it: from the mutation creating it to the daemon
    # marking it done. The bench's clock (`wall_polled_s`) also counts starting the dagster-graphql command
    # that sends the mutation (~3-5 s) and the poll's 1 s steps.
    wall_polled = round(t_done - t_launch, 1)
    wall = wall_polled
    if backfill is not None and backfill.backfill_end_timestamp is not None:
        wall = round(backfill.backfill_end_timestamp - backfill.backfill_timestamp, 1)

    def by(items: list[dict[str, Any]], key: str) -> dict[str, int]:
        return {v: sum(i[key] == v for i in items) for v in sorted({i[key] for i in items})}

    admitted = sum(b["requests"] for b in in_window)
    floor = max(0.0, (admitted - TIER_BURST_REQUESTS) / TIER_REQUESTS_PER_S)
    spans = [
        (r["started"], r["ended"]) for r in backfill_runs if r.get("started") and r.get("ended")
    ]
    run_s = round(max(e for _, e in spans) - min(s for s, _ in spans), 2) if spans else None
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "setup": {
            "range": [start.isoformat(), end.isoformat()],
            "whole_season": whole_season,
            "season": [first.isoformat(), last.isoformat()],
            "partitions": (end - start).days + 1,
            "games": games,
            "live_games": args.live_games,
            "game_minutes": args.game_minutes,
            "rate_limit": stats.get("rate_limit"),
            "launch": "launchPartitionBackfill (the UI's mutation) via dagster-graphql -w workspace.yaml",
            "daemon": f"dagster-daemon run -w workspace.yaml, {config}, live sensor + schedules on",
            "instance": (
                f"Postgres storage, DAGSTER_EVENT_BATCH_SIZE={DEPLOYED_EVENT_BATCH}"
                if instance_url
                else "SQLite storage under DAGSTER_HOME"
            ),
            "warehouse": "postgres (shared rate budget in kalshi.rate_budget)",
        },
        "backfill": {
            "id": backfill_id,
            "status": status,
            "wall_s": wall,
            # What the rate limit alone allows for every request admitted meanwhile (live runs share it).
            "floor_s": round(floor, 2),
            "wall_vs_floor": round(wall / floor, 2) if floor > 0 else None,
            "wall_polled_s": wall_polled,
            "wall_polled_vs_floor": round(wall_polled / floor, 2) if floor > 0 else None,
            "run_s": run_s,
            "run_vs_floor": round(run_s / floor, 2) if run_s and floor > 0 else None,
            "runs": len(backfill_runs),
            "runs_by_status": by(backfill_runs, "status"),
            "failed_runs": sum(r["status"] == "FAILURE" for r in backfill_runs),
            "run_ranges": [r["partition_range"] for r in backfill_runs],
            "api": _api_totals(backfill_runs),
        },
        "warehouse": {
            **counts,
            "expected_markets": 2 * games,
            "duplicate_candle_keys": int(dup[0]) if dup else None,
            "candles_per_s": round(counts["candlesticks"] / wall, 1) if wall else None,
        },
        "concurrent_runs": {
            "total": len(concurrent),
            "by_kind": by(concurrent, "kind"),
            "by_status": by(concurrent, "status"),
            "failed": sum(r["status"] == "FAILURE" for r in concurrent),
            "api": _api_totals(concurrent),
            "in_flight_at_end": by(in_flight, "status"),
        },
        "client": _api_totals(window),
        "exchange": {
            "during_backfill": {
                **rate_peaks(bins, launch_s, done_s),
                "requests": sum(b["requests"] for b in in_window),
                "rate_limited_429": sum(b["rate_limited"] for b in in_window),
                "fault_429": sum(b["fault_429"] for b in in_window),
            },
            "whole_session": {
                **rate_peaks(bins, first_s, done_s),
                "totals": stats.get("totals"),
            },
            "limit": {
                "requests_per_s": TIER_REQUESTS_PER_S,
                "burst_requests": TIER_BURST_REQUESTS,
                "max_admissible_1s": TIER_BURST_REQUESTS + TIER_REQUESTS_PER_S,
                "max_admissible_10s_per_s": (TIER_BURST_REQUESTS + 10 * TIER_REQUESTS_PER_S) / 10,
            },
            "note": (
                "1-s values are wall-clock-aligned bins of admitted requests (what Kalshi's bucket meters); "
                "a bucket of 40 refilling at 20/s admits at most 60 in one second and 24/s over 10 s, and "
                "the shared budget (0.9 of the burst, 36) at most 56 and 23.6/s"
            ),
        },
        "progress": progress,
        "runs": [{k: v for k, v in r.items() if k != "partition_range"} for r in window],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(home, ignore_errors=True)
    print(f"simulator and daemon logs: {logs}")
    print(json.dumps({k: v for k, v in result.items() if k not in ("progress", "runs")}, indent=2))
    print(f"wrote {args.output}")
    ok = status in ("COMPLETED", "COMPLETED_SUCCESS") and result["backfill"]["failed_runs"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
