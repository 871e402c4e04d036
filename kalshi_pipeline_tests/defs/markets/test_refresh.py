"""`refresh_markets` called directly against the simulator with a pinned clock, and the per-game team check."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from kalshi_pipeline.defs.markets.refresh import MarketsRefresh, game_team_check, refresh_markets
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.ratelimit import UnlimitedLimiter
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline.warehouse.schema import MARKETS
from kalshi_pipeline_tests.defs.markets.helpers import sim_dates
from kalshi_pipeline_tests.warehouse.builders import EVENT, market_rows

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_discovered_markets_are_stored_stamped_with_the_given_time(
    simulator: Any, tmp_path: Path
) -> None:
    day = sim_dates(simulator.base_url).finished_live()
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")

    async def run() -> MarketsRefresh:
        config = KalshiConfig(base_url=simulator.base_url, rate_limit_tier="off")
        async with KalshiClient(config, limiter=UnlimitedLimiter()) as client:
            return await refresh_markets(wh, client, ["KXNBAGAME"], [day], now=NOW)

    try:
        done = asyncio.run(run())
        games = len(done.discovery.events)
        assert games > 0 and len(done.discovered) == 2 * games
        assert done.markets_from("live") == 2 * games and done.markets_from("historical") == 0
        assert tuple(done.stored.columns) == MARKETS.column_names
        assert sorted(done.stored["ticker"]) == sorted(done.discovered["ticker"])
        assert set(done.stored["ingested_at"]) == {pd.Timestamp(NOW)}
        assert len(done.complete_games) == games and done.team_problems == ()
        again = asyncio.run(run())
        assert len(again.stored) == len(done.stored)
    finally:
        wh.close()


def test_a_game_without_both_teams_is_a_problem() -> None:
    both = market_rows()
    other = "KXNBAGAME-25DEC19LALBOS"
    lonely = market_rows(other, away_team="LAL", home_team="BOS").iloc[:1].assign(team="LAL")
    complete, problems = game_team_check(pd.concat([both, lonely], ignore_index=True))
    assert complete == [EVENT]
    assert problems == [f"{other}: teams ['LAL']"]
    assert game_team_check(both.iloc[0:0]) == ([], [])
