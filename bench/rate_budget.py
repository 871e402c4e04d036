"""Benchmark: do concurrent processes sharing one rate budget stay within Kalshi's limit?

Starts the simulator (`--rate-limit basic`: 200 tokens/s, capacity 400, 10 tokens per request = 20 req/s
with a 40-request burst) as a subprocess, then runs PROCESSES worker processes that each hammer it with
CONCURRENCY coroutines for SECONDS. Three variants:

- `shared_file`: every worker draws from one `FileRateBudget` (the embedded-DuckDB deployment);
- `shared_postgres`: every worker draws from one `PostgresRateBudget` row (the Postgres deployment);
- `independent`: each worker has its own in-process `TokenBucket` (what you get without the shared budget).

For each it records every grant instant and reports requests, 429s, the aggregate rate after the initial
burst, the busiest 1-second window and whether every prefix fits `capacity + rate x elapsed`.
Writes bench/results/rate_budget.json.

    .venv/bin/python bench/rate_budget.py [--seconds 12] [--processes 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import create_database, drop_database, free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "rate_budget.json"
RATE, CAPACITY, COST = 200.0, 400.0, 10


def _worker(
    mode: str, base_url: str, store: str, seconds: float, concurrency: int, start: Any, out: Any
) -> None:
    from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
    from kalshi_pipeline.kalshi.errors import KalshiRateLimited
    from kalshi_pipeline.kalshi.ratelimit import TokenBucket
    from kalshi_pipeline.warehouse.rate_budget import (
        BURST_FRACTION,
        budget_name,
        open_rate_budget,
    )

    if mode == "independent":
        inner: Any = TokenBucket(RATE, CAPACITY)
    else:
        # What KalshiApiResource uses: the tier's rate, BURST_FRACTION of its capacity.
        inner = open_rate_budget(
            name=budget_name(base_url),
            rate_per_s=RATE,
            capacity=CAPACITY * BURST_FRACTION,
            url=store if mode == "shared_postgres" else None,
            directory=store if mode == "shared_file" else None,
        )
    grants: list[float] = []

    class Recording:
        async def acquire(self, cost: int) -> None:
            await inner.acquire(cost)
            grants.append(time.time())

    async def run() -> dict[str, Any]:
        config = KalshiConfig(base_url=base_url, rate_limit_tier="basic")
        async with KalshiClient(config, limiter=Recording()) as client:
            deadline = time.time() + seconds

            gave_up = 0

            async def loop() -> None:
                nonlocal gave_up
                while time.time() < deadline:
                    try:
                        await client.get_exchange_status()
                    except KalshiRateLimited:
                        gave_up += 1

            await asyncio.gather(*(loop() for _ in range(concurrency)))
            return {
                "requests": client.stats.requests,
                "rate_limited": client.stats.rate_limited,
                "gave_up": gave_up,
            }

    start.wait()
    stats = asyncio.run(run())
    out.put({**stats, "grants": grants})


def _run_mode(
    mode: str, base_url: str, store: str, seconds: float, processes: int, concurrency: int
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(mode, base_url, store, seconds, concurrency, start, out))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    time.sleep(3.0)  # imports done; the server's bucket refilled since the previous mode
    t0 = time.time()
    start.set()
    parts = [out.get(timeout=seconds + 60) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    grants = sorted(g for p in parts for g in p["grants"])
    requests = sum(p["requests"] for p in parts)
    limited = sum(p["rate_limited"] for p in parts)
    worst_excess = max((i + 1) - (CAPACITY + RATE * (g - t0)) / COST for i, g in enumerate(grants))
    busiest = 0
    j = 0
    for i, g in enumerate(grants):
        while grants[j] < g - 1.0:
            j += 1
        busiest = max(busiest, i - j + 1)
    burst_end = t0 + 2.0
    steady = [g for g in grants if g >= burst_end]
    steady_rate = len(steady) / max(1e-9, (grants[-1] - burst_end)) if steady else 0.0
    return {
        "mode": mode,
        "processes": processes,
        "concurrency_per_process": concurrency,
        "seconds": seconds,
        "requests": requests,
        "rate_limited_429": limited,
        "calls_failed_after_retries": sum(p["gave_up"] for p in parts),
        "requests_per_s_overall": round(len(grants) / (grants[-1] - t0), 2),
        "requests_per_s_after_burst": round(steady_rate, 2),
        "busiest_1s_window": busiest,
        "bound_holds": worst_excess <= 1e-6,
        "worst_prefix_excess_requests": round(worst_excess, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "kalshi_pipeline.cli", "simulator", "--host", "127.0.0.1",
         "--port", str(port), "--rate-limit", "basic"],
        cwd=ROOT,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/trade-api/v2"
    pg_url: str | None = None
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base_url}/exchange/status", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        pg_url = create_database("rate_budget_bench")
        results = []
        with tempfile.TemporaryDirectory() as tmp:
            for mode, store in (
                ("shared_file", tmp),
                ("shared_postgres", pg_url),
                ("independent", ""),
            ):
                result = _run_mode(
                    mode, base_url, store, args.seconds, args.processes, args.concurrency
                )
                print(json.dumps(result))
                results.append(result)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        if pg_url:
            drop_database(pg_url)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "simulator_tier": "basic",
                "limit": {"tokens_per_s": RATE, "capacity": CAPACITY, "cost": COST,
                          "requests_per_s": RATE / COST, "burst_requests": CAPACITY / COST},
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )  # fmt: skip
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
