"""Live polling of game states: which dates are polled, and a sensor tick that polls a live game."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from kalshi_pipeline.defs.games.assets import game_probabilities, game_states
from kalshi_pipeline.defs.games.polling import (
    POLL_DATE_TAG,
    live_dates,
    live_game_states_sensor,
    plan_polls,
)
from kalshi_pipeline.defs.markets.assets import markets
from kalshi_pipeline.defs.resources import LiveResource
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline_tests.defs.markets.helpers import resources
from kalshi_pipeline_tests.simulated import todays_start

NOW = datetime(2026, 1, 20, 1, 0, tzinfo=UTC)
LEAD, MAX_LIVE = timedelta(minutes=15), timedelta(hours=6)


def _games(*rows: tuple[datetime | None, bool, date]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scheduled_start": pd.to_datetime(
                pd.Series([r[0] for r in rows], dtype=object), utc=True
            ),
            "all_settled": [r[1] for r in rows],
            "game_date": [r[2] for r in rows],
        }
    )


def test_live_dates() -> None:
    d1, d2, d3, d4 = (date(2026, 1, 19 + i) for i in range(4))
    games = _games(
        (NOW - timedelta(hours=1), False, d1),  # in play
        (NOW + timedelta(minutes=10), False, d2),  # inside the lead
        (NOW + timedelta(minutes=30), False, d3),  # not yet
        (NOW - timedelta(hours=1), True, d4),  # settled
        (None, False, d4),  # no start known
    )
    assert live_dates(games, NOW, LEAD, MAX_LIVE) == [d1, d2]
    late = _games((NOW - timedelta(hours=6, seconds=1), False, d1))
    assert live_dates(late, NOW, LEAD, MAX_LIVE) == []


def test_plan_polls_one_per_date_and_interval() -> None:
    d1, d2 = date(2026, 1, 19), date(2026, 1, 20)
    polls = plan_polls([d1, d2], {d2}, NOW, 10)
    assert [p.game_date for p in polls] == [d1]
    same = plan_polls([d1], set(), NOW + timedelta(seconds=9), 10)
    later = plan_polls([d1], set(), NOW + timedelta(seconds=10), 10)
    assert same[0].run_key == polls[0].run_key != later[0].run_key


def test_sensor_polls_a_live_game(start_simulator: Callable[..., Any], tmp_path: Path) -> None:
    sim = start_simulator(now=todays_start())
    world = sim.app.state.world
    live = [g for g in world.games if g.injected]
    day = live[0].game_date
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    res = {**resources(sim.base_url, url), "live": LiveResource(game_state_seconds=10)}
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([markets], resources=res, partition_key=day.isoformat(), instance=instance)
    context = dg.build_sensor_context(instance=instance, resources=res)
    result = live_game_states_sensor(context)
    assert isinstance(result, dg.SensorResult) and result.run_requests
    (request,) = result.run_requests
    assert (
        request.partition_key == day.isoformat() and request.tags[POLL_DATE_TAG] == day.isoformat()
    )
    # The requested run: game states then probabilities of the date, in process.
    done = dg.materialize(
        [markets, game_states, game_probabilities],
        selection=[game_states.key],
        resources=res,
        partition_key=day.isoformat(),
        instance=instance,
    )
    assert done.success
    wh = open_warehouse(url)
    try:
        states = wh.game_states([day], event_tickers=[g.event_ticker for g in live])
    finally:
        wh.close()
    polled = states[states["source"] == "live_data"]
    assert set(polled["status"]) == {"live"} and len(polled) == len(live)
    assert polled["period"].notna().all() and polled["clock"].notna().all()
