"""The synthetic world: schedule, lifecycle and live-game injection."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from kalshi_pipeline.simulator.config import SimulatorConfig
from kalshi_pipeline.simulator.sports import NBA
from kalshi_pipeline.simulator.world import ET, World

NOW = datetime(2026, 1, 15, 23, 30, tzinfo=UTC)
KALSHI_CODES = set(
    [
        "ATL",
        "BOS",
        "BKN",
        "CHA",
        "CHI",
        "CLE",
        "DAL",
        "DEN",
        "DET",
        "GSW",
        "HOU",
        "IND",
        "LAC",
        "LAL",
        "MEM",
        "MIA",
        "MIL",
        "MIN",
        "NOP",
        "NYK",
        "OKC",
        "ORL",
        "PHI",
        "PHX",
        "POR",
        "SAC",
        "SAS",
        "TOR",
        "UTA",
        "WAS",
    ]
)


@pytest.fixture(scope="module")
def world() -> World:
    return World(SimulatorConfig(seed=3, now=NOW, live_games=3, game_minutes=40))


def test_teams_and_tickers(world: World) -> None:
    assert {t.code for t in NBA.teams} == KALSHI_CODES
    for game in world.games[:200]:
        local = datetime.fromtimestamp(game.tip_s, ET)
        expected = (
            f"KXNBAGAME-{local:%y}{local:%b}{local:%d}".upper() + game.away.code + game.home.code
        )
        assert game.event_ticker == expected
        assert game.market_tickers == (
            f"{expected}-{game.away.code}",
            f"{expected}-{game.home.code}",
        )
        assert game.away != game.home


def test_full_season_schedule(world: World) -> None:
    season = [
        g
        for g in world.games
        if not g.injected
        and datetime(2025, 10, 1, tzinfo=UTC).timestamp()
        < g.tip_s
        < datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    ]
    per_team = Counter()
    home = Counter()
    for game in season:
        per_team[game.away.code] += 1
        per_team[game.home.code] += 1
        home[game.home.code] += 1
    # NOW is mid-season: 35 days of future games are scheduled, the rest is not yet.
    assert all(35 < n < 82 for n in per_team.values())
    per_day = Counter((g.game_date, code) for g in season for code in (g.away.code, g.home.code))
    assert max(per_day.values()) == 1  # nobody plays twice a day
    for game in season:
        local = datetime.fromtimestamp(game.tip_s, ET)
        assert 19 * 60 <= local.hour * 60 + local.minute <= 22 * 60 + 30
        assert game.game_date == local.date()
    first = min(g.tip_s for g in world.games)
    assert (
        first <= (NOW - timedelta(days=15 * 30)).timestamp()
        or datetime.fromtimestamp(first, ET).month == 10
    )
    months = {datetime.fromtimestamp(g.tip_s, ET).month for g in world.games if not g.injected}
    assert not months & {5, 6, 7, 8, 9}
    whole = World(SimulatorConfig(seed=3, now=datetime(2026, 8, 1, tzinfo=UTC)))
    counts = Counter()
    for game in whole.games:
        if datetime(2025, 10, 1).date() < game.game_date < datetime(2026, 6, 1).date():
            counts[game.away.code] += 1
            counts[game.home.code] += 1
    assert set(counts.values()) == {82}


def test_schedule_is_stable_across_restarts() -> None:
    a = World(SimulatorConfig(seed=11, now=NOW))
    b = World(SimulatorConfig(seed=11, now=NOW + timedelta(days=2, hours=3)))
    c = World(SimulatorConfig(seed=12, now=NOW))
    common = {g.event_ticker: g for g in a.games}.keys() & {g.event_ticker for g in b.games}
    assert len(common) > 1500
    for ticker in list(common)[:300]:
        ga, gb = a.by_event[ticker], b.by_event[ticker]
        assert (ga.tip_s, ga.close_s, ga.final_margin) == (gb.tip_s, gb.close_s, gb.final_margin)
    assert {g.event_ticker for g in a.games} != {g.event_ticker for g in c.games}


def test_live_games_injected(world: World) -> None:
    now_s = int(NOW.timestamp())
    injected = [g for g in world.games if g.injected]
    assert len(injected) == 3
    for game in injected:
        assert game.tip_s < now_s < game.end_s
        assert game.status_at(now_s) == "active"
        assert game.event_ticker.startswith("KXNBAGAME-26JAN15")
    codes = [c for g in injected for c in (g.away.code, g.home.code)]
    assert len(codes) == len(set(codes))
    assert len({g.tip_s for g in injected}) == 3


def test_without_the_schedule_only_the_injected_games_exist(world: World) -> None:
    bare = World(SimulatorConfig(seed=3, now=NOW, live_games=3, game_minutes=40, schedule=False))
    now_s = int(NOW.timestamp())
    assert len(bare.games) == 3 and all(g.injected for g in bare.games)
    # The same tip-offs as with the schedule (the teams may differ: none is busy elsewhere that day).
    assert [g.tip_s for g in bare.games] == [g.tip_s for g in world.games if g.injected]
    assert all(g.status_at(now_s) == "active" for g in bare.games)
    assert set(bare.by_event) == {g.event_ticker for g in bare.games}


def test_lifecycle_order(world: World) -> None:
    for game in world.games[::50]:
        assert game.created_s < game.open_s < game.tip_s < game.end_s < game.close_s
        assert game.close_s < game.determined_s < game.settled_s
        assert game.settled_s - game.open_s < 3.3 * 86400
        assert game.status_at(game.open_s - 1) == "initialized"
        assert game.status_at(game.tip_s) == "active"
        assert game.status_at(game.close_s) == "closed"
        assert game.status_at(game.determined_s) == "determined"
        assert game.status_at(game.settled_s) == "finalized"
        assert game.close_at(game.tip_s) == game.tip_s + 14 * 86400
        assert game.close_at(game.settled_s) == game.close_s


def test_cutoff_and_archive(world: World) -> None:
    now_s = int(NOW.timestamp())
    cutoff = world.cutoff_s(now_s)
    assert cutoff % 86400 == 0 and 89 * 86400 < now_s - cutoff <= 91 * 86400
    archived = [g for g in world.games if world.is_archived(g, now_s)]
    assert archived and all(g.settled_s < cutoff for g in archived)


def test_finished_market_state_matches_the_path() -> None:
    """The cheap state of markets closed over a day ago equals the state of their full paths."""
    world = World(SimulatorConfig(seed=11, now=NOW, live_games=1))
    now_ms = int(NOW.timestamp() * 1000)
    finished = [g for g in world.games if g.close_s * 1000 + 86_400_000 <= now_ms]
    assert len(finished) > 200
    for game in finished[::25]:
        for ticker in game.market_tickers:
            assert world.market_state(ticker, now_ms) == world.market_path(ticker).state_at(now_ms)
    recent = next(
        g for g in world.games if g.close_s * 1000 <= now_ms < g.close_s * 1000 + 3600_000 * 24
    )
    ticker = recent.home_ticker
    assert world.market_state(ticker, now_ms) == world.market_path(ticker).state_at(now_ms)
    future = world.games[0]
    assert world.market_state(future.home_ticker, now_ms).volume == 0
