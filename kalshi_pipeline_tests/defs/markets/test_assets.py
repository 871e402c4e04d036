"""`kalshi/markets` against the simulator: live and archived discovery, unknown series."""

from __future__ import annotations

from typing import Any

import pytest

from kalshi_pipeline.defs.markets.assets import MARKETS_KEY
from kalshi_pipeline_tests.defs.markets.helpers import (
    SimDates,
    checks_by_name,
    materialization_metadata,
    materialize,
    sim_dates,
    table,
)


@pytest.fixture(scope="module")
def dates(simulator: Any) -> SimDates:
    return sim_dates(simulator.base_url)


def test_live_date_discovers_every_game(simulator: Any, dates: SimDates, tmp_path: Any) -> None:
    day = dates.finished_live()
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    result = materialize(
        simulator.base_url, url, partition_key=day.isoformat(), selection=[MARKETS_KEY]
    )
    markets = table(url, "markets", "ticker")
    assert markets["event_ticker"].nunique() == dates.games[day]
    assert len(markets) == 2 * dates.games[day]
    assert set(markets["game_date"]) == {day}
    assert set(markets["source"]) == {"live"}
    assert set(markets["scheduled_start_source"]) == {"milestone"}
    assert set(markets["status"]) <= {"finalized", "determined", "settled"}
    for _, game in markets.groupby("event_ticker"):
        assert set(game["team"]) == {game["away_team"].iloc[0], game["home_team"].iloc[0]}
        assert sorted(game["result"]) == ["no", "yes"]
    meta = materialization_metadata(result, "kalshi/markets")
    assert meta["games"] == dates.games[day]
    assert meta["api_requests"] > 0
    assert all(e.passed for e in checks_by_name(result).values())


def test_archived_date_is_found_under_historical(
    simulator: Any, dates: SimDates, tmp_path: Any
) -> None:
    day = dates.archived()
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    result = materialize(
        simulator.base_url, url, partition_key=day.isoformat(), selection=[MARKETS_KEY]
    )
    markets = table(url, "markets", "ticker")
    assert len(markets) == 2 * dates.games[day]
    assert set(markets["source"]) == {"historical"}
    assert all(markets["settlement_ts"] < dates.cutoff)
    assert (
        materialization_metadata(result, "kalshi/markets")["historical_lookups"] >= dates.games[day]
    )


def test_unknown_series_fails_with_its_name(simulator: Any, dates: SimDates, tmp_path: Any) -> None:
    result = materialize(
        simulator.base_url,
        f"duckdb:///{tmp_path}/wh.duckdb",
        partition_key=dates.finished_live().isoformat(),
        selection=[MARKETS_KEY],
        series="KXNBAGAME,KXNOSUCHSERIES",
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "unknown series 'KXNOSUCHSERIES'" in str(failure.event_specific_data.error)  # type: ignore[union-attr]
