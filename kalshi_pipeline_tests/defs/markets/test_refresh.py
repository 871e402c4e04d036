"""`refresh_markets` called directly against the simulator with a pinned clock, and the per-game team check."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from kalshi_pipeline.defs.markets.refresh import (
    MarketDatesFailed,
    MarketsRefresh,
    game_team_check,
    refresh_markets,
)
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.ratelimit import UnlimitedLimiter
from kalshi_pipeline.kalshi.tickers import parse_game_event
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


class _FailingLookups(httpx.AsyncBaseTransport):
    """Forwards to the real exchange, but answers 503 to every market lookup of some games."""

    def __init__(self, games: set[str]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.games = games

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("event_ticker") in self.games:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "storm"}})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_date_whose_lookups_fail_does_not_cost_the_other_dates(
    simulator: Any, tmp_path: Path
) -> None:
    dates = sim_dates(simulator.base_url)
    cutoff_day = dates.cutoff.date()
    archived = sorted(d for d, n in dates.games.items() if n and d < cutoff_day - timedelta(days=3))
    bad_day, good_day = archived[-2:]
    games_of_bad_day = {
        e for e in _event_tickers(simulator.base_url) if parse_game_event(e).game_date == bad_day
    }
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")

    async def run() -> MarketsRefresh:
        config = KalshiConfig(
            base_url=simulator.base_url,
            rate_limit_tier="off",
            max_retries=1,
            backoff_base_s=0.001,
            backoff_max_s=0.001,
        )
        transport = _FailingLookups(games_of_bad_day)
        async with KalshiClient(config, limiter=UnlimitedLimiter(), transport=transport) as client:
            return await refresh_markets(wh, client, ["KXNBAGAME"], [bad_day, good_day], now=NOW)

    try:
        with pytest.raises(MarketDatesFailed) as failed:
            asyncio.run(run())
        assert list(failed.value.failures) == [bad_day]
        assert str(bad_day) in str(failed.value) and "\n" not in str(failed.value)
        assert wh.markets([bad_day]).empty
        stored = wh.markets([good_day])
        assert len(stored) == 2 * dates.games[good_day]
    finally:
        wh.close()


def _event_tickers(base_url: str) -> list[str]:
    async def run() -> list[str]:
        config = KalshiConfig(base_url=base_url, rate_limit_tier="off")
        async with KalshiClient(config, limiter=UnlimitedLimiter()) as client:
            return [e.event_ticker async for e in client.iter_events(series_ticker="KXNBAGAME")]

    return asyncio.run(run())
