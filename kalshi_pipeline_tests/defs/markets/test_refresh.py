"""`refresh_markets` called directly against the simulator with a pinned clock, and the per-game team check."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from kalshi_pipeline.defs.markets.discovery import market_row
from kalshi_pipeline.defs.markets.refresh import (
    MarketDatesFailed,
    MarketsRefresh,
    game_team_check,
    refresh_markets,
    settlement_check,
)
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig, Market
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

    async def series_categories() -> tuple[str, ...]:
        config = KalshiConfig(base_url=simulator.base_url, rate_limit_tier="off")
        async with KalshiClient(config, limiter=UnlimitedLimiter()) as client:
            return (await client.get_series("KXNBAGAME")).categories

    try:
        done = asyncio.run(run())
        # The series' categories and each market's settlement bounds are stored; results fit values.
        categories = list(asyncio.run(series_categories()))
        assert [json.loads(c) for c in done.stored["series_categories"]] == [categories] * len(
            done.stored
        )
        settled = done.stored[done.stored["result"].isin(["yes", "no", "scalar"])]
        assert len(settled) == len(done.stored) and done.settlement_problems == ()
        assert set(done.stored["settlement_bounds_type"]) == {"default"}
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


def test_a_settlement_must_fit_its_result() -> None:
    rows = pd.DataFrame(
        [
            ("Y", "yes", Decimal("1.0000")),
            ("N", "no", Decimal("0")),
            ("S", "scalar", Decimal("0.5000")),
            ("OPEN", "", None),
            ("NONE", None, None),
            ("Y-UNSETTLED", "yes", None),
        ],
        columns=["ticker", "result", "settlement_value_dollars"],
    )
    assert settlement_check(rows) == []
    bad = pd.DataFrame(
        [
            ("Y0", "yes", Decimal("0")),
            ("S-HIGH", "scalar", Decimal("1.5")),
            ("S-NONE", "scalar", None),
            ("S-FLOAT", "scalar", 0.5),
            ("VOID", "void", Decimal("0")),
        ],
        columns=["ticker", "result", "settlement_value_dollars"],
    )
    assert settlement_check(bad) == [
        "Y0: result 'yes' settled at 0",
        "S-HIGH: scalar result settled at 1.5 (not in [0, 1])",
        "S-NONE: scalar result settled at None (not in [0, 1])",
        "S-FLOAT: settlement value 0.5 is not an exact decimal",
        "VOID: unknown result 'void'",
    ]


@pytest.mark.parametrize(
    "dialect", ["duckdb", pytest.param("postgres", marks=pytest.mark.integration)]
)
def test_a_scalar_settlement_is_stored_exactly_with_its_bounds_and_categories(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A tied game settles both markets at 0.50 (Kalshi's `result: scalar`).
    market = Market.from_payload(
        {
            "ticker": "KXNFLGAME-25AUG09LVSEA-SEA",
            "event_ticker": "KXNFLGAME-25AUG09LVSEA",
            "status": "finalized",
            "market_type": "binary",
            "result": "scalar",
            "settlement_value_dollars": "0.5000",
            "settlement_ts": "2025-08-10T06:00:00Z",
            "settlement_bounds_type": "default",
            "settlement_floor_dollars": "0.0000",
            "volume_fp": "1234.00",
        }
    )
    row = market_row(
        market,
        series_ticker="KXNFLGAME",
        source="live",
        milestone_start=None,
        now=NOW,
        series_categories=("Sports", "Football"),
    )
    url = (
        f"duckdb:///{tmp_path / 'wh.duckdb'}"
        if dialect == "duckdb"
        else request.getfixturevalue("fresh_pg_url")
    )
    wh = open_warehouse(url)
    try:
        wh.ensure_schema()
        wh.upsert(MARKETS.name, pd.DataFrame([row]))
        stored = wh.markets([row["game_date"]])
        (got,) = stored.to_dict("records")
        assert got["result"] == "scalar"
        assert isinstance(got["settlement_value_dollars"], Decimal)
        assert got["settlement_value_dollars"] == Decimal("0.5")
        assert got["settlement_bounds_type"] == "default"
        assert got["settlement_floor_dollars"] == Decimal(0)
        assert json.loads(got["series_categories"]) == ["Sports", "Football"]
        assert settlement_check(stored) == []
    finally:
        wh.close()


def test_a_tied_games_scalar_settlement_is_stored_exactly_from_the_exchange(
    start_simulator: Any, tmp_path: Path
) -> None:
    now = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    sim = start_simulator(now=now)
    world = sim.app.state.world
    now_s = int(now.timestamp())
    tied = next(
        g for g in world.games if g.tied and g.settled_s < now_s and not world.is_archived(g, now_s)
    )
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")

    async def run() -> MarketsRefresh:
        config = KalshiConfig(base_url=sim.base_url, rate_limit_tier="off")
        async with KalshiClient(config, limiter=UnlimitedLimiter()) as client:
            return await refresh_markets(wh, client, ["KXNBAGAME"], [tied.game_date], now=NOW)

    try:
        done = asyncio.run(run())
        game = done.stored[done.stored["event_ticker"] == tied.event_ticker]
        assert sorted(game["ticker"]) == sorted(tied.market_tickers)
        assert set(game["result"]) == {"scalar"}
        assert list(game["settlement_value_dollars"]) == [Decimal("0.5")] * 2
        assert done.settlement_problems == ()
    finally:
        wh.close()
