"""The scoring process of simulated games, and the market model following the score and the clock."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from statistics import NormalDist

import numpy as np
import pytest

from kalshi_pipeline.simulator.config import SimulatorConfig
from kalshi_pipeline.simulator.scoring import (
    OVERTIME_CLOCK_S,
    PERIOD_CLOCK_S,
    REGULATION_CLOCK_S,
    REGULATION_PERIODS,
    STATUS_FINISHED,
    STATUS_LIVE,
    STATUS_SCHEDULED,
    GameScore,
    game_score,
)
from kalshi_pipeline.simulator.world import Game, World

NOW = datetime(2026, 2, 10, 12, tzinfo=UTC)
SEED = 5


@pytest.fixture(scope="module")
def world() -> World:
    return World(SimulatorConfig(seed=SEED, now=NOW))


@pytest.fixture(scope="module")
def finished_games(world: World) -> list[Game]:
    return [g for g in world.games if g.settled_s < NOW.timestamp() - 86400][:400]


def test_final_score_agrees_with_settlement(finished_games: list[Game]) -> None:
    for game in finished_games:
        score = game_score(game, SEED)
        home, away = score.final
        assert (home > away) == game.home_wins, game.event_ticker
        final = score.state_at(game.end_s * 1000)
        assert final.status == STATUS_FINISHED and (final.home_points, final.away_points) == (
            home,
            away,
        )
        assert final.clock_s == 0 and final.period == score.periods[-1].number
        plays = score.plays_until(game.end_s * 1000)
        assert sum(p.points for p in plays if p.side == "home") == home
        assert sum(p.points for p in plays if p.side == "away") == away


def test_periods_clock_and_overtime(finished_games: list[Game]) -> None:
    overtimes = 0
    for game in finished_games:
        score = game_score(game, SEED)
        periods = score.periods
        assert [p.number for p in periods] == list(range(1, len(periods) + 1))
        assert periods[0].start_ms == game.tip_s * 1000 and periods[-1].end_ms == game.end_s * 1000
        assert all(a.end_ms < b.start_ms for a, b in itertools.pairwise(periods))
        assert [p.clock_s for p in periods[:REGULATION_PERIODS]] == [PERIOD_CLOCK_S] * 4
        assert all(p.clock_s == OVERTIME_CLOCK_S for p in periods[REGULATION_PERIODS:])
        # Each overtime starts tied: every period before it ended level.
        for p in periods[REGULATION_PERIODS:]:
            before = score.state_at(p.start_ms - 1)
            assert before.home_points == before.away_points, game.event_ticker
            overtimes += 1
        # The clock runs down inside a period and the score never decreases.
        mid = periods[1]
        a = score.state_at(mid.start_ms + 1000)
        b = score.state_at((mid.start_ms + mid.end_ms) // 2)
        assert a.status == b.status == STATUS_LIVE and a.period == b.period == 2
        assert a.clock_s > b.clock_s and b.home_points >= a.home_points
    assert 0 < overtimes < len(finished_games) // 4


def test_before_tipoff_and_determinism(finished_games: list[Game]) -> None:
    game = finished_games[0]
    before = game_score(game, SEED).state_at(game.tip_s * 1000 - 1)
    assert before.status == STATUS_SCHEDULED and before.home_points == before.away_points == 0
    assert GameScore(game, SEED).final == GameScore(game, SEED).final
    assert [p.ts_ms for p in GameScore(game, SEED).plays_until(game.end_s * 1000)] == [
        p.ts_ms for p in GameScore(game, SEED).plays_until(game.end_s * 1000)
    ]
    assert any(GameScore(g, SEED + 1).final != GameScore(g, SEED).final for g in finished_games[:5])


def test_remaining_clock_matches_the_scalar_clock_exactly(finished_games: list[Game]) -> None:
    """`remaining_at` (vectorized) equals the per-instant game clock to the last bit, breaks and period
    edges included: prices derived from it stay what they were."""
    for game in finished_games[:100]:
        score = game_score(game, SEED)
        edges = [e + d for p in score.periods for e in (p.start_ms, p.end_ms) for d in (-1, 0, 1)]
        rng = np.random.default_rng(len(edges))
        drawn = rng.integers(game.tip_s * 1000 - 600_000, game.end_s * 1000 + 600_000, 500)
        t = np.unique(np.concatenate([drawn, edges]))
        total = score.total_clock_s
        expected = np.array([total - score._elapsed_at(int(x)) for x in t]) / REGULATION_CLOCK_S
        expected[t >= score.end_ms] = 0.0
        assert np.array_equal(score.remaining_at(t), expected), game.event_ticker


def test_prices_follow_the_score(world: World, finished_games: list[Game]) -> None:
    """In play, the home market quotes the win probability implied by the score margin and clock share."""
    for game in finished_games[:20]:
        home = world.game_path(game).home
        score = game_score(game, SEED)
        times = np.arange(game.tip_s * 1000 + 60_000, game.end_s * 1000 - 60_000, 60_000)
        mids, quoted = [], []
        for t in times:
            quote = home.quote_at(int(t))
            assert quote is not None
            mids.append((quote.yes_bid + quote.yes_ask) / 2)
            quoted.append(quote.ts_ms)
        at = np.array(quoted)
        sigma = game.margin_sd
        mu = sigma * NormalDist().inv_cdf(min(max(game.home_p_tip, 0.02), 0.98))
        fair = []
        for m, share in zip(score.margin_at(at), score.elapsed_fraction(at), strict=True):
            noise = max(1.0 - share, 1e-9) * score.volatility
            precision = 1 / sigma**2 + share / noise
            fair.append(
                NormalDist().cdf((mu / sigma**2 + m / noise) / precision * math.sqrt(precision))
            )
        # Quotes sit around the fair value: half-spreads up to 1.5 cents plus rounding to the tick grid.
        gaps = np.abs(np.array(mids) - np.array(fair) * 10_000)
        assert float(gaps.max()) <= 250, (game.event_ticker, float(gaps.max()))
        # And a basket moves the price the scorer's way.
        assert float(np.corrcoef(np.diff(mids), np.diff(score.margin_at(times)))[0, 1]) > 0.3


def test_in_play_prices_sharpen_and_stay_calibrated(
    world: World, finished_games: list[Game]
) -> None:
    """Brier score of the home mid falls quarter by quarter; the confident prices come true as often."""
    moments: dict[str, list[tuple[float, float]]] = {"tip": [], "Q1": [], "Q2": [], "Q3": []}
    for game in finished_games[:240]:
        score = game_score(game, SEED)
        home = world.game_path(game).home
        outcome = 1.0 if game.home_wins else 0.0
        instants = [game.tip_s * 1000 - 1000] + [p.end_ms - 1000 for p in score.periods[:3]]
        for name, t in zip(moments, instants, strict=True):
            quote = home.quote_at(t)
            assert quote is not None
            moments[name].append(((quote.yes_bid + quote.yes_ask) / 20_000, outcome))
    brier = {k: float(np.mean([(p - y) ** 2 for p, y in v])) for k, v in moments.items()}
    assert brier["Q3"] < brier["Q2"] < brier["Q1"] < brier["tip"] + 0.01, brier
    confident = [(p, y) for p, y in moments["Q3"] if p >= 0.8 or p <= 0.2]
    hit = np.mean([y == (p >= 0.8) for p, y in confident])
    expected = np.mean([max(p, 1 - p) for p, _ in confident])
    assert len(confident) > 40 and abs(hit - expected) < 0.08, (hit, expected)
