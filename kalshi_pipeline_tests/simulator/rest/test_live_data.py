"""The live sports data endpoints over a real socket, on a simulator with a pinned start."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from kalshi_pipeline.simulator.scoring import game_score
from kalshi_pipeline.simulator.world import World, team_target_id
from kalshi_pipeline_tests.simulator.rest.helpers import assert_error, get_ok

START = datetime(2026, 1, 20, 23, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sim(start_simulator_module: Callable[..., Any]) -> Any:
    return start_simulator_module(now=START)


@pytest.fixture(scope="module")
def api(sim: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=30) as client:
        yield client


def _world(sim: Any) -> World:
    return sim.app.state.world


def test_live_finished_and_scheduled_games(sim: Any, api: httpx.Client) -> None:
    world = _world(sim)
    now_s = world.now_ms() // 1000
    live = next(g for g in world.games if g.injected)
    done = next(g for g in world.games if g.end_s < now_s - 86400)
    later = next(g for g in world.games if g.created_s < now_s < g.tip_s - 3600)

    body = get_ok(api, f"/live_data/milestone/{live.milestone_id}")["live_data"]
    assert body["milestone_id"] == live.milestone_id and body["type"] == "basketball_game"
    d = body["details"]
    assert d["status"] == "live" and d["round"] >= 1
    assert d["home_abbreviation"] == live.home.code and d["away_abbreviation"] == live.away.code
    minutes, seconds = d["final_round_time_left"].split(":")
    assert 0 <= int(minutes) * 60 + int(seconds) <= 720 and len(seconds) == 2
    assert "winner" not in d

    d = get_ok(api, f"/live_data/milestone/{done.milestone_id}")["live_data"]["details"]
    home, away = game_score(done, world.seed).final
    assert d["status"] == "finished" and (d["home_points"], d["away_points"]) == (home, away)
    assert d["winner"] == team_target_id(done.home if done.home_wins else done.away)
    assert d["final_round_time_left"] == "0:00"

    d = get_ok(api, f"/live_data/milestone/{later.milestone_id}")["live_data"]["details"]
    assert d["status"] == "none" and d["home_points"] == d["away_points"] == 0
    assert "round" not in d and "winner" not in d

    assert_error(api.get("/live_data/milestone/no-such-milestone"), 404, "not_found")


def test_batch_repeats_the_parameter(sim: Any, api: httpx.Client) -> None:
    world = _world(sim)
    now_s = world.now_ms() // 1000
    ids = [g.milestone_id for g in world.games if g.created_s <= now_s][:3]
    body = get_ok(api, "/live_data/batch", milestone_ids=[*ids, "unknown"])
    assert [d["milestone_id"] for d in body["live_datas"]] == ids
    # A comma-joined list names no milestone: nothing comes back, as on Kalshi.
    assert get_ok(api, "/live_data/batch", milestone_ids=",".join(ids))["live_datas"] == []
    many = [g.milestone_id for g in world.games if g.created_s <= now_s][:101]
    assert_error(api.get("/live_data/batch", params={"milestone_ids": many}), 400, "bad_request")


def test_game_stats_play_by_play(sim: Any, api: httpx.Client) -> None:
    world = _world(sim)
    now_s = world.now_ms() // 1000
    done = next(g for g in world.games if g.end_s < now_s - 86400)
    periods = get_ok(api, f"/live_data/milestone/{done.milestone_id}/game_stats")["pbp"]["periods"]
    score = game_score(done, world.seed)
    assert len(periods) == len(score.periods)
    events = [e for p in periods for e in p["events"]]
    assert sum(e["points"] for e in events if e["team"] == "home") == score.final[0]
    assert (events[-1]["home_points"], events[-1]["away_points"]) == score.final
    later = next(g for g in world.games if g.created_s < now_s < g.tip_s - 3600)
    body = get_ok(api, f"/live_data/milestone/{later.milestone_id}/game_stats")
    assert body["pbp"]["periods"] == []
