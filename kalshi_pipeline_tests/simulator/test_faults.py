"""Fault injection and rate limiting over a real socket."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kalshi_pipeline.simulator.gateway.faults import parse_faults


def test_fault_script_then_normal(start_simulator: Any) -> None:
    sim = start_simulator(faults="script=429;503;reset;500;ok;502;504")
    url = f"{sim.base_url}/exchange/status"
    root = sim.base_url.rsplit("/trade-api", 1)[0]
    assert (
        httpx.get(f"{root}/_sim/health").status_code == 200
    )  # never faulted, consumes no script step
    first = httpx.get(url)
    assert first.status_code == 429 and first.json() == {"error": "too many requests"}
    assert "retry-after" not in first.headers
    second = httpx.get(url)
    assert second.status_code == 503 and second.json()["error"]["code"] == "service_unavailable"
    with pytest.raises(httpx.TransportError):
        httpx.get(url)
    assert httpx.get(url).status_code == 500
    assert httpx.get(url).status_code == 200
    assert httpx.get(url).status_code == 502
    assert httpx.get(url).status_code == 504
    assert all(httpx.get(url).status_code == 200 for _ in range(5))


def test_fault_rates_are_deterministic(start_simulator: Any) -> None:
    outcomes = []
    for _ in range(2):
        sim = start_simulator(faults="500=0.3,503=0.2,latency=0.2:5")
        with httpx.Client() as client:
            outcomes.append(
                [client.get(f"{sim.base_url}/exchange/status").status_code for _ in range(40)]
            )
    assert outcomes[0] == outcomes[1]
    assert {200, 500, 503} <= set(outcomes[0])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("404=0.1", "unknown fault"),
        ("500=2", "between 0 and 1"),
        ("latency=0.1", "latency=RATE:MS"),
        ("script=429;teapot", "not one of"),
        ("500=0.7,503=0.6", "more than 1"),
        ("500", "NAME=VALUE"),
    ],
)
def test_fault_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_faults(spec)


def test_rate_limit_429(start_simulator: Any) -> None:
    sim = start_simulator(rate_limit="basic")
    statuses = []
    with httpx.Client() as client:
        for _ in range(60):
            response = client.get(f"{sim.base_url}/exchange/status")
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json() == {"error": "too many requests"}
                assert "retry-after" not in response.headers
                assert not any(h.startswith("x-ratelimit") for h in response.headers)
    # Basic: 400 tokens of burst at 10 per request = 40 requests, then refills at 20 requests/s.
    assert statuses[:40] == [200] * 40
    assert 429 in statuses[40:]
    root = sim.base_url.rsplit("/trade-api", 1)[0]
    assert httpx.get(f"{root}/_sim/health").status_code == 200
