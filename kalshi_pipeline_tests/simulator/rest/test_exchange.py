"""Exchange-wide REST behaviour over a real socket: status, the simulator's own endpoints, determinism."""

from __future__ import annotations

import time
from typing import Any

import httpx

from kalshi_pipeline_tests.simulator.rest.helpers import (
    assert_error,
    get_ok,
)


def test_health_and_exchange_status(simulator: Any, api: httpx.Client) -> None:
    root = simulator.base_url.rsplit("/trade-api", 1)[0]
    assert httpx.get(f"{root}/_sim/health").json()["status"] == "ok"
    status = get_ok(api, "/exchange/status")
    assert status["exchange_active"] is True and status["trading_active"] is True
    assert simulator.ws_url.endswith("/trade-api/ws/v2")


def test_sim_stats_counts_requests_admissions_and_429s(start_simulator: Any) -> None:
    sim = start_simulator(rate_limit="basic", faults="script=429;ok")
    root = sim.base_url.rsplit("/trade-api", 1)[0]
    since = int(time.time())
    with httpx.Client() as client:
        statuses = [client.get(f"{sim.base_url}/exchange/status").status_code for _ in range(60)]
    stats = httpx.get(f"{root}/_sim/stats", params={"since": since}).json()

    assert stats["rate_limit"] == {"tier": "basic", "requests_per_s": 20.0, "burst_requests": 40.0}
    totals = stats["totals"]
    assert totals["requests"] == 60
    assert totals["fault_429"] == statuses.count(429) - totals["rate_limited"] == 1
    assert totals["rate_limited"] >= 1 and totals["admitted"] == statuses.count(200)
    # The stats endpoint itself is neither counted nor metered.
    assert totals["requests"] == totals["admitted"] + totals["rate_limited"] + totals["fault_429"]
    bins = stats["per_second"]
    assert [b["second"] for b in bins] == sorted(b["second"] for b in bins)
    assert all(b["second"] >= since for b in bins)
    for kind in ("requests", "admitted", "rate_limited", "fault_429"):
        assert sum(b[kind] for b in bins) == totals[kind]
    later = httpx.get(f"{root}/_sim/stats", params={"since": bins[-1]["second"] + 1}).json()
    assert later["per_second"] == [] and later["totals"] == totals
    bad = httpx.get(f"{root}/_sim/stats", params={"since": "yesterday"})
    assert_error(bad, 400, "bad_request")


def test_same_seed_same_payloads(start_simulator: Any, simulator: Any) -> None:
    other = start_simulator(seed=7)
    third = start_simulator(seed=8)
    with httpx.Client(timeout=30) as client:
        params = {"limit": 50, "status": "settled"}
        a = client.get(f"{simulator.base_url}/historical/markets", params=params).json()
        b = client.get(f"{other.base_url}/historical/markets", params=params).json()
        c = client.get(f"{third.base_url}/historical/markets", params=params).json()
        assert a == b
        assert a != c
        ticker = a["markets"][0]["ticker"]
        query = {"start_ts": 0, "end_ts": 2_000_000_000, "period_interval": 1440}
        path = f"/historical/markets/{ticker}/candlesticks"
        assert (
            client.get(simulator.base_url + path, params=query).json()
            == client.get(other.base_url + path, params=query).json()
        )
