"""Exchange status and schedule: documented payload shapes, and a maintenance window ridden out over sockets."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig, KalshiProtocolError
from kalshi_pipeline.kalshi.exchange import ExchangeSchedule, ExchangeStatus
from kalshi_pipeline.kalshi.ws import KalshiWebSocket, StreamEvent, TradeMessage
from kalshi_pipeline_tests.simulated import live_tickers

STATUS = {
    "exchange_active": True,
    "trading_active": True,
    "intra_exchange_transfers_active": True,
    "exchange_estimated_resume_time": None,
    "exchange_index_statuses": [
        {
            "exchange_index": 0,
            "description": "Default",
            "exchange_active": True,
            "trading_active": True,
            "intra_exchange_transfers_active": True,
        },
        {
            "exchange_index": 3,
            "description": "Tennis and baseball",
            "exchange_active": True,
            "trading_active": False,
            "intra_exchange_transfers_active": True,
        },
    ],
}

ALL_DAY = [{"open_time": "00:00", "close_time": "24:00"}]
SCHEDULE = {
    "schedule": {
        "standard_hours": [
            {
                "start_time": "2026-01-01T00:00:00Z",
                "end_time": "2027-01-01T00:00:00Z",
                "monday": ALL_DAY,
                "tuesday": ALL_DAY,
                "wednesday": ALL_DAY,
                "thursday": [
                    {"open_time": "00:00", "close_time": "03:00"},
                    {"open_time": "05:00", "close_time": "24:00"},
                ],
                "friday": ALL_DAY,
                "saturday": [{"open_time": "08:00", "close_time": "02:00"}],
                "sunday": [{"open_time": "10:00", "close_time": "20:00"}],
            }
        ],
        "maintenance_windows": [
            {"start_datetime": "2026-12-10T08:00:00Z", "end_datetime": "2026-12-10T10:00:00Z"},
            {"start_datetime": "2026-12-03T08:00:00Z", "end_datetime": "2026-12-03T10:00:00Z"},
        ],
    }
}


def test_status_keeps_every_index_and_answers_per_index() -> None:
    status = ExchangeStatus.from_payload(STATUS)
    assert status.intra_exchange_transfers_active is True
    assert [s.exchange_index for s in status.exchange_index_statuses] == [0, 3]
    assert status.exchange_index_statuses[1].description == "Tennis and baseball"
    assert status.trading_active_on(0) and not status.trading_active_on(3)
    assert status.trading_active_on(2)  # no entry: the top-level flags (index 0) decide
    bare = ExchangeStatus.from_payload({"exchange_active": True, "trading_active": False})
    assert bare.exchange_index_statuses == () and not bare.trading_active_on(0)
    paused = ExchangeStatus.from_payload(
        {**STATUS, "exchange_estimated_resume_time": "2026-12-03T10:00:00Z"}
    )
    assert paused.exchange_estimated_resume_time == datetime(2026, 12, 3, 10, tzinfo=UTC)
    broken = {**STATUS, "exchange_index_statuses": [{"exchange_index": 1, "exchange_active": True}]}
    with pytest.raises(KalshiProtocolError, match="trading_active"):
        ExchangeStatus.from_payload(broken)


def test_schedule_hours_and_maintenance() -> None:
    schedule = ExchangeSchedule.from_payload(SCHEDULE)
    assert [w.start.day for w in schedule.maintenance_windows] == [3, 10]  # sorted
    in_window = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)  # Thursday 04:30 ET
    assert schedule.maintenance_at(in_window) == schedule.maintenance_windows[0]
    assert schedule.in_trading_hours(in_window) is False
    assert not schedule.trading_expected(in_window)
    after = datetime(2026, 12, 3, 10, tzinfo=UTC)
    assert schedule.maintenance_at(after) is None and schedule.trading_expected(after)
    assert schedule.next_maintenance(after) == schedule.maintenance_windows[1]
    # Saturday 08:00 to 02:00 runs past midnight into Sunday; Sunday opens again at 10:00 ET.
    assert schedule.in_trading_hours(datetime(2026, 12, 6, 6, 30, tzinfo=UTC)) is True  # Sun 01:30
    assert schedule.in_trading_hours(datetime(2026, 12, 6, 8, tzinfo=UTC)) is False  # Sun 03:00
    assert schedule.in_trading_hours(datetime(2028, 1, 1, tzinfo=UTC)) is None
    bad = {"schedule": {**SCHEDULE["schedule"], "standard_hours": [
        {**SCHEDULE["schedule"]["standard_hours"][0], "monday": [{"open_time": "9:00", "close_time": "17:00"}]}
    ]}}  # fmt: skip
    with pytest.raises(KalshiProtocolError, match="HH:MM"):
        ExchangeSchedule.from_payload(bad)


@pytest.mark.slow
def test_a_maintenance_window_is_ridden_out(start_simulator: Any) -> None:
    """Status, schedule and a WebSocket client across a pinned window: dropped, refused, back after it."""
    # Far enough ahead for the (schedule-free, quick to build) exchange to start and a client to connect.
    start = datetime.now(UTC) + timedelta(seconds=15)
    end = start + timedelta(seconds=12)
    sim = start_simulator(maintenance_windows=((start, end),), schedule=False)
    tickers = live_tickers(sim)

    async def body() -> None:
        config = KalshiConfig(base_url=sim.base_url, rate_limit_tier="off")
        ws = KalshiWebSocket(sim.ws_url, signer=lambda m, p: {
            "KALSHI-ACCESS-KEY": "k", "KALSHI-ACCESS-TIMESTAMP": str(int(time.time() * 1000)),
            "KALSHI-ACCESS-SIGNATURE": "c2ln",
        }, backoff_initial=0.05, backoff_max=1.0, max_reconnects=5)  # fmt: skip
        items: list[Any] = []
        async with KalshiClient(config) as client, ws:
            schedule = await client.get_exchange_schedule()
            window = schedule.next_maintenance(datetime.now(UTC))
            assert window is not None
            assert (window.start, window.end) == (
                start.replace(microsecond=0),
                end.replace(microsecond=0),
            )
            await ws.subscribe(["trade"], tickers)
            deadline = time.monotonic() + 120
            paused_seen = 0
            # Through the window the client is disconnected and refused (HTTP 503) more often than
            # max_reconnects: refusals of an unavailable exchange never make it give up.
            while time.monotonic() < deadline:
                item = await ws.next_item(60)
                items.append(item)
                now = datetime.now(UTC)
                if schedule.maintenance_at(now) is not None and now >= start:
                    status = await client.get_exchange_status()
                    if datetime.now(UTC) < end - timedelta(milliseconds=500):
                        # Asked and answered inside the window (the schedule lists whole seconds;
                        # the exchange's clock is this one).
                        assert not status.trading_active and not status.trading_active_on(0)
                        assert status.exchange_estimated_resume_time == window.end
                        paused_seen += 1
                if isinstance(item, TradeMessage) and now > end + timedelta(seconds=1):
                    break
            assert (await client.get_exchange_status()).trading_active
            assert paused_seen >= 1
        events = [i for i in items if isinstance(i, StreamEvent)]
        assert any(e.kind == "disconnect" for e in events)
        refusals = [e for e in events if e.kind == "error" and e.code == 503]
        assert len(refusals) > 5  # more than max_reconnects
        assert ws.stats.connects >= 2
        trades = [i for i in items if isinstance(i, TradeMessage)]
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        assert trades and not [t for t in trades if start_ms <= (t.ts_ms or 0) < end_ms]

    asyncio.run(body())
