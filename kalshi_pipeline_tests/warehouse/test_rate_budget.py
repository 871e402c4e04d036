"""The cross-process rate budget: processes sharing one bucket never exceed capacity + rate x elapsed."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import multiprocessing.synchronize
import time
from pathlib import Path

import psycopg
import pytest

from kalshi_pipeline.warehouse.rate_budget import (
    FileRateBudget,
    PostgresRateBudget,
    RateBudgetError,
    budget_name,
    open_rate_budget,
)

RATE = 40.0
CAPACITY = 8.0
PER_PROCESS = 30


def _hammer(store: str, name: str, start: multiprocessing.synchronize.Event, out: mp.Queue) -> None:
    """Acquire one token PER_PROCESS times from the shared bucket and report when each was granted."""
    budget = open_rate_budget(
        name=name,
        rate_per_s=RATE,
        capacity=CAPACITY,
        url=store if store.startswith("postgresql://") else None,
        directory=None if store.startswith("postgresql://") else store,
    )

    async def run() -> list[float]:
        granted = []
        for _ in range(PER_PROCESS):
            await budget.acquire(1)
            granted.append(time.time())
        return granted

    start.wait()
    out.put(asyncio.run(run()))


def _assert_within_budget(created: float, grants: list[float]) -> None:
    """Every prefix of the grants fits in a bucket that started full at `created`."""
    for count, granted in enumerate(sorted(grants), start=1):
        allowed = CAPACITY + RATE * (granted - created)
        assert count <= allowed + 1e-6, (
            f"grant #{count} at +{granted - created:.3f}s exceeds {allowed:.2f}"
        )


def _run_processes(store: str, name: str, processes: int = 2) -> list[float]:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_hammer, args=(store, name, start, out)) for _ in range(processes)
    ]
    for w in workers:
        w.start()
    time.sleep(0.5)
    start.set()
    grants: list[float] = []
    for _ in workers:
        grants.extend(out.get(timeout=60))
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    return grants


@pytest.mark.integration  # starts processes
def test_file_budget_shared_by_two_processes(tmp_path: Path) -> None:
    name = budget_name("http://127.0.0.1:1/trade-api/v2")
    # Creating the bucket (full) before the workers start fixes the instant the bound counts from.
    open_rate_budget(name=name, rate_per_s=RATE, capacity=CAPACITY, directory=tmp_path).available()
    created = time.time()
    grants = _run_processes(str(tmp_path), name)
    assert len(grants) == 2 * PER_PROCESS
    _assert_within_budget(created - 0.005, grants)


def test_postgres_budget_shared_by_two_processes(fresh_pg_url: str) -> None:
    name = budget_name("http://127.0.0.1:2/trade-api/v2")
    budget = PostgresRateBudget(fresh_pg_url, name=name, rate_per_s=RATE, capacity=CAPACITY)
    budget.available()
    with psycopg.connect(fresh_pg_url) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM updated_at)::float8 FROM kalshi.rate_budget WHERE name = %s",
            (name,),
        ).fetchone()
    assert row is not None
    created = row[0]
    budget.close()
    grants = _run_processes(fresh_pg_url, name)
    assert len(grants) == 2 * PER_PROCESS
    _assert_within_budget(created - 0.005, grants)


def test_reservation_queues_callers_and_drain_empties(tmp_path: Path) -> None:
    now = [1000.0]
    budget = FileRateBudget(tmp_path / "b.bin", rate_per_s=10, capacity=20, clock=lambda: now[0])
    assert budget.reserve(15) == 0.0
    assert budget.reserve(10) == pytest.approx(0.5)  # 5 tokens short at 10/s
    assert budget.available() == pytest.approx(-5)
    now[0] += 2.0
    assert budget.available() == pytest.approx(15)
    now[0] += 100.0
    assert budget.available() == pytest.approx(20)  # never above capacity
    budget.drain()
    assert budget.available() == pytest.approx(0)


def test_postgres_budget_drain_and_clear_errors(fresh_pg_url: str) -> None:
    # A slow refill (1 token/s) keeps the bound below true however long the two calls take apart.
    budget = PostgresRateBudget(fresh_pg_url, name="t", rate_per_s=1, capacity=50)
    assert budget.reserve(10) == 0.0
    budget.drain()
    assert budget.available() <= 0.5
    budget.close()
    with pytest.raises(ValueError, match="positive"):
        PostgresRateBudget(fresh_pg_url, name="t", rate_per_s=0, capacity=50)
    gone = PostgresRateBudget(
        "postgresql://postgres@127.0.0.1:1/nowhere", name="t", rate_per_s=1, capacity=1
    )
    with pytest.raises(RateBudgetError, match="unreachable"):
        gone.reserve(1)
