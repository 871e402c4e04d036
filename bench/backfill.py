"""Benchmark: backfill a range of game dates against the simulator at Kalshi's Basic-tier rate limit.

Runs, in one invocation and against one simulated exchange (rate limit `basic`: 200 tokens/s, 10 per
request = 20 requests/s, bucket of 2 s):

1. the pipeline (`kalshi/markets`, `kalshi/candlesticks_raw`, `kalshi/candlesticks`) as one single-run
   backfill over the range, into an embedded DuckDB file;
2. the same into a Postgres database created (and dropped) for the run;
3. the naive way, as Kalshi's starter code does it: list the range's markets, then one sequential
   `GET /series/{s}/markets/{t}/candlesticks` per market (no batching, no concurrency), pull only.

Each scenario runs in a fresh process (so peak RSS is its own) and reports wall time, API requests,
requests/s against the tier's 20/s, candles written (or fetched) per second and peak RSS. Results go to
`bench/results/backfill.json`; a Markdown table is printed.

    .venv/bin/python bench/backfill.py [--start YYYY-MM-DD] [--days N] [--pg-admin-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from common import PG_ADMIN, temporary_database

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "backfill.json"
TIER = "basic"
TIER_REQUESTS_PER_S = 20.0  # 200 read tokens/s at 10 tokens per request


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _pipeline(
    base_url: str, warehouse_url: str, start: str, end: str, budget_dir: str
) -> dict[str, Any]:
    """Materialize the three assets over [start, end] in one run; return measurements."""
    os.environ["KALSHI_RATE_BUDGET_DIR"] = budget_dir
    import warnings

    warnings.filterwarnings("ignore")
    import dagster as dg

    from kalshi_pipeline.defs.candlesticks.assets import candlesticks, candlesticks_raw
    from kalshi_pipeline.defs.markets.assets import markets
    from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource

    resources = {
        "kalshi": KalshiApiResource(base_url=base_url, rate_limit_tier=TIER),
        "warehouse": WarehouseResource(url=warehouse_url),
    }
    t0 = time.perf_counter()
    result = dg.materialize(
        [markets, candlesticks_raw, candlesticks],
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end,
        },
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    wall = time.perf_counter() - t0
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
    return {
        "wall_s": round(wall, 2),
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


def _naive(base_url: str, start: str, end: str, budget_dir: str) -> dict[str, Any]:
    """List the range's markets, then one sequential candle request per market (pull only)."""
    os.environ["KALSHI_RATE_BUDGET_DIR"] = budget_dir
    from kalshi_pipeline.defs.partitions import day_bounds
    from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig, parse_game_event
    from kalshi_pipeline.kalshi.ratelimit import tier_bucket
    from kalshi_pipeline.warehouse.rate_budget import shared_rate_budget

    first, last = date.fromisoformat(start), date.fromisoformat(end)

    async def run() -> dict[str, Any]:
        bucket = tier_bucket(TIER)
        limiter = shared_rate_budget(
            base_url, bucket.rate_per_s, bucket.capacity, directory=budget_dir
        )
        config = KalshiConfig(base_url=base_url, rate_limit_tier=TIER)
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


def _child(queue: Any, fn_name: str, args: tuple[Any, ...]) -> None:
    try:
        queue.put(("ok", globals()[fn_name](*args)))
    except BaseException as exc:  # report anything, the parent decides
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def _in_process(fn_name: str, *args: Any) -> dict[str, Any]:
    """Run one scenario in a fresh spawned process and return its measurements."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn_name, args))
    proc.start()
    status, payload = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{fn_name} failed: {payload}")
    return payload


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
    parser.add_argument("--skip-postgres", action="store_true", help="Only DuckDB and naive.")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Where to write the JSON.")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be >= 1")
    start = args.start or _default_start(args.days)
    end = start + timedelta(days=args.days - 1)

    from kalshi_pipeline.simulator import SimulatorConfig, serve_in_thread

    results: dict[str, Any] = {
        "range": {"start": start.isoformat(), "end": end.isoformat(), "days": args.days},
        "tier": TIER,
        "tier_requests_per_s": TIER_REQUESTS_PER_S,
        "seed": args.seed,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "scenarios": {},
    }
    with (
        tempfile.TemporaryDirectory(prefix="kalshi_bench_") as tmp,
        serve_in_thread(
            SimulatorConfig(host="127.0.0.1", port=0, seed=args.seed, rate_limit=TIER)
        ) as sim,
    ):
        print(f"simulator at {sim.base_url}; range {start}..{end}", file=sys.stderr)
        scenarios = results["scenarios"]
        budget = str(Path(tmp) / "budget")
        Path(budget).mkdir()
        print("pipeline -> duckdb ...", file=sys.stderr)
        scenarios["pipeline_duckdb"] = _in_process(
            "_pipeline",
            sim.base_url,
            f"duckdb:///{tmp}/bench.duckdb",
            start.isoformat(),
            end.isoformat(),
            budget,
        )
        if not args.skip_postgres:
            with temporary_database("kalshi_bench", args.pg_admin_url) as url:
                print("pipeline -> postgres ...", file=sys.stderr)
                scenarios["pipeline_postgres"] = _in_process(
                    "_pipeline", sim.base_url, url, start.isoformat(), end.isoformat(), budget
                )
        print("naive sequential pull ...", file=sys.stderr)
        scenarios["naive_sequential"] = _in_process(
            "_naive", sim.base_url, start.isoformat(), end.isoformat(), budget
        )
    naive = results["scenarios"]["naive_sequential"]
    for name, scenario in results["scenarios"].items():
        if name != "naive_sequential":
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
    lines = [
        f"Backfill {r['start']}..{r['end']} ({r['days']} days), simulator at Kalshi's "
        f"{results['tier']} tier ({results['tier_requests_per_s']:.0f} req/s):",
        "",
        "| scenario | wall s | x naive | games | markets | API requests | candle requests | "
        "req/s (limit 20) | 429s | candles | candles/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in results["scenarios"].items():
        candles = s["candles_written"] or s["raw_candles"]
        lines.append(
            f"| {name} | {s['wall_s']} | {s.get('wall_vs_naive', 1.0)} | {s['games']} | "
            f"{s['markets']} | {s['api_requests']} | {s.get('candle_requests', '-')} | "
            f"{s['requests_per_s']} | {s['api_429']} | {candles} | {s['candles_per_s']} | "
            f"{s['peak_rss_mb']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
