"""Exchange-wide behaviour over real sockets: status, schedule and maintenance, the simulator's own endpoints."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import ConnectionClosed, InvalidStatus

from kalshi_pipeline.simulator.paths import WS_PATH
from kalshi_pipeline_tests.simulated import live_tickers
from kalshi_pipeline_tests.simulator import signing
from kalshi_pipeline_tests.simulator.rest.helpers import (
    RFC3339,
    assert_error,
    get_ok,
    ts,
)

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


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


def test_schedule_lists_the_weekly_hours_and_windows(simulator: Any, api: httpx.Client) -> None:
    schedule = get_ok(api, "/exchange/schedule")["schedule"]
    (weekly,) = schedule["standard_hours"]
    assert ts(weekly["start_time"]) < time.time() < ts(weekly["end_time"])
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    for day in days:
        # The test simulators run without the weekly window: open all day, every day.
        assert weekly[day] == [{"open_time": "00:00", "close_time": "24:00"}]
    assert schedule["maintenance_windows"] == []
    status = get_ok(api, "/exchange/status")
    assert status["intra_exchange_transfers_active"] is True
    assert status["exchange_index_statuses"] == [
        {
            "exchange_index": 0,
            "description": "Default",
            "exchange_active": True,
            "trading_active": True,
            "intra_exchange_transfers_active": True,
        }
    ]


def test_weekly_window_cuts_thursday_out_of_the_standard_hours(start_simulator: Any) -> None:
    sim = start_simulator(maintenance="thu 03:00-05:00", schedule=False)
    schedule = httpx.get(f"{sim.base_url}/exchange/schedule").json()["schedule"]
    assert schedule["standard_hours"][0]["thursday"] == [
        {"open_time": "00:00", "close_time": "03:00"},
        {"open_time": "05:00", "close_time": "24:00"},
    ]
    windows = schedule["maintenance_windows"]
    assert 2 <= len(windows) <= 3  # the next 14 days
    for window in windows:
        start, end = ts(window["start_datetime"]), ts(window["end_datetime"])
        assert end - start == 7200 and RFC3339.match(window["start_datetime"])
        local = datetime.fromtimestamp(start, ZoneInfo("America/New_York"))
        assert (local.weekday(), local.hour, local.minute) == (3, 3, 0)


def test_a_pinned_window_pauses_trading_and_the_websocket(start_simulator: Any) -> None:
    """In the window: status says trading inactive, sessions close (1001), handshakes get 503; no trade."""
    # Far enough ahead for the (schedule-free, quick to build) exchange to start and a client to connect.
    start = datetime.now(UTC) + timedelta(seconds=15)
    end = start + timedelta(seconds=10)
    sim = start_simulator(maintenance_windows=((start, end),), schedule=False)
    tickers = live_tickers(sim)
    start_s, end_s = int(start.timestamp()), int(end.timestamp())
    windows = httpx.get(f"{sim.base_url}/exchange/schedule").json()["schedule"][
        "maintenance_windows"
    ]
    assert [(ts(w["start_datetime"]), ts(w["end_datetime"])) for w in windows] == [(start_s, end_s)]
    headers = signing.signed_headers(KEY, "GET", WS_PATH, "key-1")

    async def go() -> None:
        async with websockets.connect(sim.ws_url, additional_headers=headers) as ws:
            await ws.send(
                json.dumps({"id": 1, "cmd": "subscribe", "params": {"channels": ["trade"]}})
            )
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 60)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert datetime.now(UTC) >= start
        status = await asyncio.to_thread(get_ok_url, f"{sim.base_url}/exchange/status")
        if datetime.now(UTC) < end - timedelta(milliseconds=500):
            assert status["trading_active"] is False and status["exchange_active"] is True
            assert ts(status["exchange_estimated_resume_time"]) == end_s
            assert status["exchange_index_statuses"][0]["trading_active"] is False
        refused = 0
        while datetime.now(UTC) < end - timedelta(milliseconds=500):
            try:
                async with websockets.connect(sim.ws_url, additional_headers=headers):
                    pass
            except InvalidStatus as exc:
                assert exc.response.status_code == 503
                refused += 1
            await asyncio.sleep(0.5)
        assert refused >= 1
        while datetime.now(UTC) < end + timedelta(seconds=1):
            await asyncio.sleep(0.2)
        async with websockets.connect(sim.ws_url, additional_headers=headers) as ws:
            await ws.send(
                json.dumps({"id": 1, "cmd": "subscribe", "params": {"channels": ["trade"]}})
            )
            assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "subscribed"

    asyncio.run(go())
    assert httpx.get(f"{sim.base_url}/exchange/status").json()["trading_active"] is True
    for ticker in tickers:
        paused = httpx.get(
            f"{sim.base_url}/markets/trades",
            params={"ticker": ticker, "min_ts": start_s + 1, "max_ts": end_s - 1, "limit": 1000},
        ).json()["trades"]
        assert paused == []


def get_ok_url(url: str) -> dict[str, Any]:
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    return response.json()
