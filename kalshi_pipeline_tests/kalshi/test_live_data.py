"""Live sports data: the game state read from open `details`, and the client's live-data endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest

from kalshi_pipeline.kalshi import GameState, KalshiClient, KalshiConfig, KalshiNotFound, LiveData
from kalshi_pipeline.kalshi.live_data import parse_clock

T = TypeVar("T")


def run(fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await fn()

    return asyncio.run(main())


def test_documented_keys() -> None:
    state = GameState.from_details(
        {
            "status": "live",
            "home_points": 54,
            "away_points": 49,
            "round": 3,
            "final_round_time_left": "7:05",
            "home_id": "h-1",
            "away_id": "a-1",
        }
    )
    assert (state.status, state.home_points, state.away_points, state.period) == ("live", 54, 49, 3)
    assert (state.clock, state.clock_seconds, state.winner, state.missing) == (
        "7:05",
        425,
        None,
        (),
    )
    done = GameState.from_details({"status": "finished", "winner": "a-1", "away_id": "a-1"})
    assert done.winner == "away"
    assert GameState.from_details({"winner": "HOME"}).winner == "home"


def test_absent_and_renamed_keys_are_listed_not_raised() -> None:
    state = GameState.from_details({"game_status": "live", "home_score": "12", "quarter": 2.0})
    assert (state.status, state.home_points, state.period) == ("live", 12, 2)
    assert state.missing == ("away_points", "clock")
    empty = GameState.from_details({"home_points": "n/a", "final_round_time_left": "soon"})
    assert empty.missing == ("status", "home_points", "away_points", "period", "clock")
    assert empty.clock is None and empty.clock_seconds is None
    scheduled = GameState.from_details({"status": "none", "home_points": 0, "away_points": 0})
    assert scheduled.missing == () and scheduled.period is None


def test_clock_forms() -> None:
    assert [parse_clock(v) for v in ("12:00", "0:42.3", 95, 12.7, "30", None, True, -1, "x")] == [
        720,
        42,
        95,
        12,
        30,
        None,
        None,
        None,
        None,
    ]


def test_live_data_keeps_details_raw() -> None:
    payload = {"type": "basketball_game", "details": {"status": "live", "new_key": [1, 2]}}
    data = LiveData.from_payload(payload, milestone_id="m-1")
    assert data.milestone_id == "m-1" and data.details["new_key"] == [1, 2]
    assert data.state.status == "live" and "home_points" in data.state.missing


def config_for(sim: Any) -> KalshiConfig:
    return KalshiConfig(base_url=sim.base_url, rate_limit_tier="off", max_retries=0)


def test_client_endpoints_against_the_simulator(start_simulator: Callable[..., Any]) -> None:
    simulator = start_simulator(now=datetime(2026, 1, 20, 23, 0, tzinfo=UTC))
    world = simulator.app.state.world
    now_s = world.now_ms() // 1000
    visible = [g for g in world.games if g.created_s <= now_s]
    live = next(g for g in visible if g.injected)
    ids = [g.milestone_id for g in visible[:150]]
    sent: list[httpx.URL] = []

    class Recording(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(request.url)
            return await super().handle_async_request(request)

    async def main() -> tuple[LiveData, list[LiveData], Any]:
        async with KalshiClient(config_for(simulator), transport=Recording()) as client:
            one = await client.get_live_data(live.milestone_id)
            many = await client.get_live_datas([*ids, ids[0]])
            stats = await client.get_game_stats(live.milestone_id)
            with pytest.raises(KalshiNotFound):
                await client.get_live_data("no-such-milestone")
            return one, many, stats

    one, many, stats = run(main)
    assert one.milestone_id == live.milestone_id and one.state.status == "live"
    assert one.state.missing == () and one.state.period is not None
    assert sorted(d.milestone_id or "" for d in many) == sorted(ids)
    batch_urls = [u for u in sent if u.path.endswith("/live_data/batch")]
    assert [len(u.params.get_list("milestone_ids")) for u in batch_urls] == [100, 50]
    assert stats.supported and len(stats.periods) == one.state.period
    played = sum(e["points"] for p in stats.periods for e in p if e["team"] == "home")
    assert played == one.state.home_points
