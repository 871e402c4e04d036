"""Benchmark: backfill a range of game dates against the simulator at Kalshi's Basic-tier rate limit.

Runs, in one invocation and against one simulated exchange (rate limit `basic`: 200 tokens/s, 10 per
request = 20 requests/s, bucket of 2 s):

1. the pipeline (`kalshi/markets`, `kalshi/candlesticks_raw`, `kalshi/candlesticks`) as one single-run
   backfill over the range, into an embedded DuckDB file, with `dg.materialize` in the process; wall
   time of the call (the ephemeral instance is made before it), run time from the run's record;
2. the same into a Postgres database created (and dropped) for the run;
3. the naive way, as Kalshi's starter code does it: list the range's markets, then one sequential
   `GET /series/{s}/markets/{t}/candlesticks` per market (no batching, no concurrency), pull only.

4. `cli_duckdb` / `cli_postgres`: the same range through `dagster asset materialize --partition-range`
   (a fresh DAGSTER_HOME with the project's dagster.yaml), as an operator runs it; run time from the
   instance's run record. `cli_postgres_deployed`: the same with `deploy/dagster.yaml` (Dagster's storage
   in Postgres) and the deployments' `DAGSTER_EVENT_BATCH_SIZE`; `cli_postgres_deployed_unbatched`
   without it. Each CLI scenario also reports `phases`, where its run's time went by its event log (the
   markets step, the candle pull, after the pull, and the time spent recording materializations and check
   evaluations).

Before the scenarios, one untimed naive pull warms the simulator's rendered-history cache, so every scenario
meets the same warm exchange and the client side is what is measured (`--cold-simulator` skips it).

The floor is what the rate limit alone allows: `(api_requests - 40 burst) / 20 per s`; `run_vs_floor` is
the run's own time over it (both ways of running), `wall_vs_floor` the whole call or command's. `--tier off` runs
the same against an unlimited simulator (candles/s against the naive pull). Each scenario runs in a fresh
process (so peak RSS is its own) and reports wall time, API requests,
requests/s against the tier's 20/s, candles written (or fetched) per second and peak RSS. Results go to
`bench/results/backfill.json`; a Markdown table is printed.

    .venv/bin/python bench/backfill.py [--start YYYY-MM-DD] [--days N] [--tier basic|off]
        [--scenarios pipeline_duckdb,cli_duckdb,...] [--output PATH] [--pg-admin-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from common import (
    DEPLOYED_EVENT_BATCH,
    PG_ADMIN,
    deployed_instance_env,
    in_fresh_process,
    results_header,
    temporary_database,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "backfill.json"
TIER = "basic"
TIER_REQUESTS_PER_S = 20.0  # 200 read tokens/s at 10 tokens per request


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _pipeline(
    base_url: str, warehouse_url: str, start: str, end: str, budget_dir: str, tier: str = TIER
) -> dict[str, Any]:
    """Materialize the three assets over [start, end] in one run; return measurements."""
    os.environ["KALSHI_RATE_BUDGET_DIR"] = budget_dir
    import warnings

    warnings.filterwarnings("ignore")
    import dagster as dg

    # The process is set up as any process of the code location (its Arrow allocator), as the CLI's is.
    import kalshi_pipeline.definitions  # noqa: F401
    from kalshi_pipeline.defs.candlesticks.assets import candle_assets
    from kalshi_pipeline.defs.markets.assets import markets
    from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource

    resources = {
        "kalshi": KalshiApiResource(base_url=base_url, rate_limit_tier=tier),
        "warehouse": WarehouseResource(url=warehouse_url),
    }
    # The instance is made before the clock starts: its storage's first import is not the run's work, and
    # the CLI scenario's run time leaves it out too.
    instance = dg.DagsterInstance.ephemeral()
    t0 = time.perf_counter()
    result = dg.materialize(
        [markets, candle_assets],
        instance=instance,
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end,
        },
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    wall = time.perf_counter() - t0
    record = instance.get_run_record_by_id(result.run_id)
    assert record is not None
    run_s = float(record.end_time or 0) - float(record.start_time or 0)
    meta: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization  # type: ignore[union-attr]
        meta[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    checks = {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }
    requests = sum(
        int(meta[k]["api_requests"]) for k in ("kalshi/markets", "kalshi/candlesticks_raw")
    )
    retries = sum(
        int(meta[k]["api_retries"]) for k in ("kalshi/markets", "kalshi/candlesticks_raw")
    )
    rate_limited = sum(
        int(meta[k]["api_rate_limited"]) for k in ("kalshi/markets", "kalshi/candlesticks_raw")
    )
    candles = int(meta["kalshi/candlesticks"]["candles"])
    floor = _floor_s(requests)
    return {
        "wall_s": round(wall, 2),
        "run_s": round(run_s, 2),
        "floor_s": round(floor, 2),
        "run_vs_floor": round(run_s / floor, 2) if floor else None,
        "wall_vs_floor": round(wall / floor, 2) if floor else None,
        "games": int(meta["kalshi/markets"]["games"]),
        "markets": int(meta["kalshi/markets"]["markets"]),
        "api_requests": requests,
        # The candle pull: one batch request per game (both markets) plus the historical cutoff.
        "candle_requests": int(meta["kalshi/candlesticks_raw"]["api_requests"]),
        "api_retries": retries,
        "api_429": rate_limited,
        "requests_per_s": round(requests / wall, 2),
        "raw_candles": int(meta["kalshi/candlesticks_raw"]["candles"]),
        "candles_written": candles,
        "rejects": int(meta["kalshi/candlesticks"]["rejects"]),
        "candles_per_s": round(candles / wall, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "checks_passed": all(checks.values()),
        "failed_checks": sorted(k for k, ok in checks.items() if not ok),
    }


def _naive(
    base_url: str, start: str, end: str, budget_dir: str, tier: str = TIER
) -> dict[str, Any]:
    """List the range's markets, then one sequential candle request per market (pull only)."""
    os.environ["KALSHI_RATE_BUDGET_DIR"] = budget_dir
    from kalshi_pipeline.defs.partitions import day_bounds
    from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig, parse_game_event
    from kalshi_pipeline.kalshi.ratelimit import tier_bucket
    from kalshi_pipeline.warehouse.rate_budget import shared_rate_budget

    first, last = date.fromisoformat(start), date.fromisoformat(end)

    async def run() -> dict[str, Any]:
        config = KalshiConfig(base_url=base_url, rate_limit_tier=tier)
        limiter = None
        if tier != "off":
            bucket = tier_bucket(tier)
            limiter = shared_rate_budget(
                base_url, bucket.rate_per_s, bucket.capacity, directory=budget_dir
            )
        async with KalshiClient(config, limiter=limiter) as client:
            t0 = time.perf_counter()
            markets = []
            since = int(day_bounds(first)[0].timestamp())
            async for event in client.iter_events(
                series_ticker="KXNBAGAME", with_nested_markets=True, min_close_ts=since
            ):
                if first <= parse_game_event(event.event_ticker).game_date <= last:
                    markets.extend(event.markets)
            now = int(time.time())
            candles = 0
            for market in markets:
                open_ts = int(market.open_time.timestamp()) if market.open_time else 0
                close_ts = int(market.close_time.timestamp()) if market.close_time else now
                got = await client.get_market_candlesticks(
                    "KXNBAGAME", market.ticker, open_ts, min(close_ts, now) // 60 * 60
                )
                candles += len(got)
            wall = time.perf_counter() - t0
            stats = client.stats
        return {
            "wall_s": round(wall, 2),
            "games": len({m.event_ticker for m in markets}),
            "markets": len(markets),
            "api_requests": stats.requests,
            "api_retries": stats.retries,
            "api_429": stats.rate_limited,
            "requests_per_s": round(stats.requests / wall, 2),
            "raw_candles": candles,
            "candles_written": 0,
            "rejects": 0,
            "candles_per_s": round(candles / wall, 1),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "checks_passed": None,
            "failed_checks": [],
        }

    return asyncio.run(run())


TIER_BURST_REQUESTS = 40.0  # the bucket holds 2 s of requests
ASSETS = ("kalshi/markets", "kalshi/candlesticks_raw", "kalshi/candlesticks")
SCENARIOS = (
    "pipeline_duckdb",
    "pipeline_postgres",
    "cli_duckdb",
    "cli_postgres",
    "cli_postgres_deployed",
    "cli_postgres_deployed_unbatched",
    "naive_sequential",
)


def _floor_s(requests: int) -> float:
    """The rate-limit floor of `requests`: what is left after the burst, at the tier's rate."""
    return max(0.0, requests - TIER_BURST_REQUESTS) / TIER_REQUESTS_PER_S


def _cli(
    base_url: str,
    warehouse_url: str,
    start: str,
    end: str,
    budget_dir: str,
    tier: str = TIER,
    instance_url: str | None = None,
    event_batch: int = 0,
) -> dict[str, Any]:
    """`dagster asset materialize --partition-range` of the three assets, as an operator runs it.

    A fresh DAGSTER_HOME with the project's dagster.yaml, or with `deploy/dagster.yaml` (instance storage
    in the Postgres database `instance_url`) and `DAGSTER_EVENT_BATCH_SIZE=event_batch` (0: unset) as the
    deployments run; the run's own start and end come from the instance, the API counters from its
    materializations, peak RSS from the finished command.
    """
    import shutil
    import subprocess

    import dagster as dg

    home = Path(tempfile.mkdtemp(prefix="kalshi_bench_home_"))
    try:
        config = ROOT / ("deploy/dagster.yaml" if instance_url else "dagster.yaml")
        shutil.copy(config, home / "dagster.yaml")
        instance_env: dict[str, str] = {}
        if instance_url:
            instance_env = deployed_instance_env(instance_url)
            os.environ.update(instance_env)  # this process reads the instance back below
        env = {
            **os.environ,
            **instance_env,
            "DAGSTER_HOME": str(home),
            "KALSHI_API_BASE_URL": base_url,
            "KALSHI_WAREHOUSE_URL": warehouse_url,
            "KALSHI_RATE_LIMIT_TIER": tier,
            "KALSHI_RATE_BUDGET_DIR": budget_dir,
            "PYTHONPATH": str(ROOT),
        }
        if event_batch:
            env["DAGSTER_EVENT_BATCH_SIZE"] = str(event_batch)
        args = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize"]
        args += ["-m", "kalshi_pipeline.definitions", "--select", ",".join(ASSETS)]
        args += ["--partition-range", f"{start}...{end}"]
        t0 = time.perf_counter()
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        if done.returncode != 0:
            raise RuntimeError(f"dagster asset materialize failed: {done.stderr[-1500:]}")
        instance = dg.DagsterInstance.from_config(str(home))
        (record,) = instance.get_run_records()
        meta: dict[str, dict[str, Any]] = {}
        for entry in instance.all_logs(
            record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ):
            mat = entry.asset_materialization
            if mat is not None:
                meta.setdefault(
                    mat.asset_key.to_user_string(), {k: v.value for k, v in mat.metadata.items()}
                )
        checks = [
            e.asset_check_evaluation
            for e in instance.all_logs(
                record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        ]
        phases = _event_phases(instance.all_logs(record.dagster_run.run_id))
        instance.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    run_s = float(record.end_time or 0) - float(record.start_time or 0)
    requests = sum(int(meta[k]["api_requests"]) for k in ASSETS[:2])
    candles = int(meta["kalshi/candlesticks"]["candles"])
    floor = _floor_s(requests)
    return {
        "wall_s": round(wall, 2),
        "run_s": round(run_s, 2),
        "floor_s": round(floor, 2),
        "run_vs_floor": round(run_s / floor, 2) if floor else None,
        "wall_vs_floor": round(wall / floor, 2) if floor else None,
        "games": int(meta["kalshi/markets"]["games"]),
        "markets": int(meta["kalshi/markets"]["markets"]),
        "api_requests": requests,
        "candle_requests": int(meta["kalshi/candlesticks_raw"]["api_requests"]),
        "api_retries": sum(int(meta[k]["api_retries"]) for k in ASSETS[:2]),
        "api_429": sum(int(meta[k]["api_rate_limited"]) for k in ASSETS[:2]),
        "requests_per_s": round(requests / run_s, 2) if run_s else None,
        "raw_candles": int(meta["kalshi/candlesticks_raw"]["candles"]),
        "candles_written": candles,
        "rejects": int(meta["kalshi/candlesticks"]["rejects"]),
        "candles_per_s": round(candles / run_s, 1) if run_s else None,
        "peak_rss_mb": round(peak, 1),
        "checks_passed": all(c is not None and c.passed for c in checks),
        "failed_checks": sorted(
            f"{c.asset_key.to_user_string()}:{c.check_name}"
            for c in checks
            if c is not None and not c.passed
        ),
        "phases": phases,
    }


def _event_phases(logs: Any) -> dict[str, float | int]:
    """Where a CLI run's time went, from its event log (seconds).

    `markets_step_s`: the markets step, start to success; `candle_pull_s`: the candle step's start to its first
    output, which it yields once every date is stored; `after_pull_s`: from there to the run's success;
    `asset_events`: materializations and check evaluations stored; `asset_event_s`: the time each of those
    took to record (from the event before it, so what the run waited for while Dagster stored it).
    """
    import dagster as dg

    kinds = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}
    start: dict[str, float] = {}
    first_output: dict[str, float] = {}
    success: dict[str, float] = {}
    run_end = 0.0
    events = 0
    event_s = 0.0
    previous: float | None = None
    for entry in logs:
        event = entry.dagster_event
        kind = event.event_type if event is not None else None
        step = entry.step_key or ""
        if kind == dg.DagsterEventType.STEP_START:
            start[step] = entry.timestamp
        elif kind == dg.DagsterEventType.STEP_OUTPUT:
            first_output.setdefault(step, entry.timestamp)
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            success[step] = entry.timestamp
        elif kind == dg.DagsterEventType.RUN_SUCCESS:
            run_end = entry.timestamp
        elif kind in kinds and previous is not None:
            events += 1
            event_s += entry.timestamp - previous
        previous = entry.timestamp
    markets = next(k for k in start if k.endswith("markets"))
    candles = next(k for k in start if k.endswith("candles"))
    return {
        "markets_step_s": round(success[markets] - start[markets], 3),
        "candle_pull_s": round(first_output[candles] - start[candles], 3),
        "after_pull_s": round(run_end - first_output[candles], 3),
        "asset_events": events,
        "asset_event_s": round(event_s, 3),
    }


def _default_start(days: int) -> date:
    from kalshi_pipeline.defs.partitions import GAME_TZ

    return datetime.now(GAME_TZ).date() - timedelta(days=days + 1)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=None, help="First game date.")
    parser.add_argument("--days", type=int, default=30, help="Number of game dates (30).")
    parser.add_argument("--seed", type=int, default=42, help="Simulator seed (42).")
    parser.add_argument(
        "--pg-admin-url",
        default=PG_ADMIN,
        help="Postgres server to create the benchmark database on.",
    )
    parser.add_argument(
        "--tier",
        choices=["basic", "off"],
        default=TIER,
        help="Rate limit of the simulator and the client (basic: 20 requests/s; off: none).",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"Comma-separated subset of {', '.join(SCENARIOS)}.",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="Where to write the JSON.")
    parser.add_argument(
        "--cold-simulator",
        action="store_true",
        help="Skip the untimed warm-up pull (the first scenario then also pays the simulator's renders).",
    )
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be >= 1")
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if unknown := sorted(set(chosen) - set(SCENARIOS)):
        parser.error(f"unknown scenarios {unknown}; expected some of {', '.join(SCENARIOS)}")
    start = args.start or _default_start(args.days)
    end = start + timedelta(days=args.days - 1)

    from kalshi_pipeline.simulator import SimulatorConfig, serve_in_thread

    results: dict[str, Any] = {
        **results_header("backfill.py", argv),
        "range": {"start": start.isoformat(), "end": end.isoformat(), "days": args.days},
        "tier": args.tier,
        "tier_requests_per_s": TIER_REQUESTS_PER_S if args.tier != "off" else None,
        "floor": "(api_requests - 40 burst) / 20 per s" if args.tier != "off" else None,
        "seed": args.seed,
        "scenarios": {},
    }
    with (
        tempfile.TemporaryDirectory(prefix="kalshi_bench_") as tmp,
        serve_in_thread(
            SimulatorConfig(host="127.0.0.1", port=0, seed=args.seed, rate_limit=args.tier)
        ) as sim,
    ):
        print(f"simulator at {sim.base_url}; range {start}..{end}", file=sys.stderr)
        scenarios = results["scenarios"]
        budget = str(Path(tmp) / "budget")
        Path(budget).mkdir()
        span = (start.isoformat(), end.isoformat())
        if not args.cold_simulator:
            # Every scenario meets a warm simulator (its rendered histories cached), so what is measured is
            # the client side: one untimed naive pull first, then the rate bucket refills.
            print("warming the simulator (an untimed naive pull) ...", file=sys.stderr)
            in_fresh_process(_naive, sim.base_url, *span, budget, args.tier)
            time.sleep(3.0)
        results["simulator_warm"] = not args.cold_simulator
        for name in chosen:
            print(f"{name} ...", file=sys.stderr)
            if name == "naive_sequential":
                scenarios[name] = in_fresh_process(_naive, sim.base_url, *span, budget, args.tier)
                continue
            if name.startswith("cli_postgres_deployed"):
                # Instance storage in Postgres as deployed, event batching on unless `_unbatched`.
                batch = 0 if name.endswith("_unbatched") else DEPLOYED_EVENT_BATCH
                with (
                    temporary_database("kalshi_bench", args.pg_admin_url) as url,
                    temporary_database("kalshi_bench_instance", args.pg_admin_url) as instance,
                ):
                    scenarios[name] = in_fresh_process(
                        _cli, sim.base_url, url, *span, budget, args.tier, instance, batch
                    )
                print(f"  {scenarios[name]}", file=sys.stderr)
                continue
            how, dialect = name.split("_")
            fn = _pipeline if how == "pipeline" else _cli
            if dialect == "duckdb":
                url = f"duckdb:///{tmp}/{name}.duckdb"
                scenarios[name] = in_fresh_process(fn, sim.base_url, url, *span, budget, args.tier)
            else:
                with temporary_database("kalshi_bench", args.pg_admin_url) as url:
                    scenarios[name] = in_fresh_process(
                        fn, sim.base_url, url, *span, budget, args.tier
                    )
            print(f"  {scenarios[name]}", file=sys.stderr)
    if "naive_sequential" not in results["scenarios"]:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
        print(markdown_table(results))
        return 0
    naive = results["scenarios"]["naive_sequential"]
    for name, scenario in results["scenarios"].items():
        if name != "naive_sequential":
            scenario["candles_per_s_vs_naive"] = round(
                scenario["candles_per_s"] / naive["candles_per_s"], 2
            )
            # The naive run only pulls; these say what storing, validating and checking cost on top.
            scenario["wall_vs_naive"] = round(scenario["wall_s"] / naive["wall_s"], 2)
            scenario["requests_vs_naive"] = round(
                scenario["api_requests"] / naive["api_requests"], 2
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown_table(results))
    print(f"\nwritten to {args.output}", file=sys.stderr)
    return 0


def markdown_table(results: dict[str, Any]) -> str:
    """Render the scenarios as a README-ready Markdown table."""
    r = results["range"]
    rate = results["tier_requests_per_s"]
    lines = [
        f"Backfill {r['start']}..{r['end']} ({r['days']} days), simulator at Kalshi's "
        f"{results['tier']} tier ({f'{rate:.0f} req/s' if rate else 'no limit'}):",
        "",
        "| scenario | wall s | run s | floor s | run / floor | API requests | 429s | candles | "
        "candles/s | x naive candles/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in results["scenarios"].items():
        candles = s["candles_written"] or s["raw_candles"]
        run = s.get("run_s", s["wall_s"])
        floor = s.get("floor_s", "-")
        ratio = s.get("run_vs_floor", s.get("wall_vs_floor", "-"))
        lines.append(
            f"| {name} | {s['wall_s']} | {run} | {floor} | {ratio} | {s['api_requests']} | "
            f"{s['api_429']} | {candles} | {s['candles_per_s']} | "
            f"{s.get('candles_per_s_vs_naive', '-')} | {s['peak_rss_mb']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
