"""The score of a simulated game: a seeded scoring process with periods, a game clock, overtime and a final.

`game_score(game, seed)` draws, once per game, every basket of both teams so that the final score has the
game's `final_margin` sign (the market settlement never disagrees with the score); a tied game (`Game.tied`,
called off at the end of regulation) ends level without overtime. The wall-clock span
from tip-off to the final buzzer (`tip_s`..`end_s`) is laid out as four 12-minute quarters with breaks
between them (a longer one at halftime) and, when regulation ends tied, 5-minute overtime periods; the
game clock runs evenly inside each period and stops in the breaks. Baskets (1, 2 or 3 points) fall at
uniform game-clock instants of their segment: regulation, then each overtime, every overtime but the
last ending tied.

What this answers: `state_at(t_ms)` (status, period, clock, points), `margin_at(t_ms)`,
`elapsed_fraction(t_ms)` and `volatility` for the market model (`market_model.game_path` prices the home
win from them), and
`plays_until(t_ms)` for the play-by-play endpoint.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kalshi_pipeline.simulator.market_model.draws import seed_words

if TYPE_CHECKING:
    from kalshi_pipeline.simulator.world import Game

REGULATION_PERIODS = 4
PERIOD_CLOCK_S = 12 * 60
OVERTIME_CLOCK_S = 5 * 60
REGULATION_CLOCK_S = REGULATION_PERIODS * PERIOD_CLOCK_S
#: Shares of the wall-clock game spent in the break after each regulation quarter (halftime after Q2)
#: and before each overtime.
_BREAK_AFTER = (0.03, 0.09, 0.03)
_OVERTIME_BREAK = 0.02
#: Basket values and their probabilities.
_BASKETS = np.array([1, 2, 3])
_BASKET_P = np.array([0.17, 0.55, 0.28])

STATUS_SCHEDULED = "none"
STATUS_LIVE = "live"
STATUS_FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class Period:
    """One period of play: its number (5+ are overtimes), wall-clock span (Unix ms) and clock length (s)."""

    number: int
    start_ms: int
    end_ms: int
    clock_s: int

    def clock_left(self, t_ms: int) -> int:
        """Seconds left on the game clock at `t_ms` (full before the period, 0 after it)."""
        frac = (t_ms - self.start_ms) / max(self.end_ms - self.start_ms, 1)
        return round(self.clock_s * (1.0 - min(max(frac, 0.0), 1.0)))


@dataclass(frozen=True, slots=True)
class ScoreState:
    """A game at one instant: `status` (`none`, `live`, `finished`), period (0 before tip-off), clock, points."""

    status: str
    period: int
    clock_s: int
    home_points: int
    away_points: int


@dataclass(frozen=True, slots=True)
class Play:
    """One basket: when (Unix ms), in which period, with what clock, by which side, and the score after it."""

    ts_ms: int
    period: int
    clock_s: int
    side: str
    points: int
    home_points: int
    away_points: int


class GameScore:
    """Every basket of one game and the period layout, drawn from the seed."""

    def __init__(self, game: Game, seed: int) -> None:
        rng = np.random.default_rng(seed_words(seed, game.event_ticker, "score"))
        margin = int(np.sign(game.final_margin)) * max(1, round(abs(game.final_margin)))
        total = int(np.clip(round(rng.normal(224.0, 18.0)), 170, 290))
        if (total + margin) % 2:
            total += 1
        home, away = (total + margin) // 2, (total - margin) // 2
        overtimes = 0
        if abs(margin) <= 6 and rng.random() < 0.3 and not game.tied:
            overtimes = 1 + int(rng.random() < 0.15)

        # Points each side scores per segment (regulation, then each overtime).
        segments: list[tuple[int, int]] = []
        ot_points = [int(rng.integers(6, 15)) for _ in range(overtimes)]
        tied_ot = sum(ot_points[:-1]) if overtimes else 0
        if overtimes:
            last = ot_points[-1]
            regulation = min(home, away) - tied_ot - last
            segments.append((regulation, regulation))
            segments.extend((p, p) for p in ot_points[:-1])
            segments.append((home - regulation - tied_ot, away - regulation - tied_ot))
        else:
            segments.append((home, away))

        self.periods = _layout(game.tip_s * 1000, game.end_s * 1000, overtimes)
        self.end_ms = game.end_s * 1000
        self.tip_ms = game.tip_s * 1000
        self.final = (home, away)
        clock_spans = [(0, REGULATION_CLOCK_S)] + [
            (
                REGULATION_CLOCK_S + i * OVERTIME_CLOCK_S,
                REGULATION_CLOCK_S + (i + 1) * OVERTIME_CLOCK_S,
            )
            for i in range(overtimes)
        ]
        elapsed: list[np.ndarray] = []
        sides: list[np.ndarray] = []
        points: list[np.ndarray] = []
        for (h_pts, a_pts), (lo, hi) in zip(segments, clock_spans, strict=True):
            for side, pts in ((0, h_pts), (1, a_pts)):
                baskets = _baskets(rng, pts)
                elapsed.append(np.sort(rng.uniform(lo, hi, len(baskets))))
                sides.append(np.full(len(baskets), side))
                points.append(baskets)
        order = np.argsort(np.concatenate(elapsed), kind="stable")
        self._elapsed = np.concatenate(elapsed)[order]
        side_all = np.concatenate(sides)[order]
        pts_all = np.concatenate(points)[order]
        self._home = np.cumsum(np.where(side_all == 0, pts_all, 0))
        self._away = np.cumsum(np.where(side_all == 1, pts_all, 0))
        self._side = side_all
        self._points = pts_all
        self._ts_ms = np.array([self._wall_ms(e) for e in self._elapsed], dtype=np.int64)

    # -- layout -----------------------------------------------------------------------------------------
    def _period_of_elapsed(self, elapsed_s: float) -> Period:
        start = 0
        for p in self.periods:
            if elapsed_s < start + p.clock_s or p is self.periods[-1]:
                return p
            start += p.clock_s
        raise AssertionError("a game has periods")

    def _wall_ms(self, elapsed_s: float) -> int:
        """The wall-clock instant at which the game clock has run `elapsed_s` seconds."""
        start = 0
        for p in self.periods:
            if elapsed_s < start + p.clock_s or p is self.periods[-1]:
                frac = (elapsed_s - start) / p.clock_s
                return int(p.start_ms + frac * (p.end_ms - p.start_ms))
            start += p.clock_s
        raise AssertionError("a game has periods")

    def _elapsed_at(self, t_ms: int) -> float:
        """Game-clock seconds run by `t_ms` (constant during breaks)."""
        start = 0.0
        for p in self.periods:
            if t_ms < p.start_ms:
                return start
            if t_ms < p.end_ms:
                return start + p.clock_s * (t_ms - p.start_ms) / (p.end_ms - p.start_ms)
            start += p.clock_s
        return start

    # -- answers ----------------------------------------------------------------------------------------
    @property
    def total_clock_s(self) -> int:
        """Game-clock seconds of the whole game, overtimes included."""
        return sum(p.clock_s for p in self.periods)

    def state_at(self, t_ms: int) -> ScoreState:
        """The game at `t_ms` (a basket at exactly `t_ms` has counted)."""
        if t_ms < self.tip_ms:
            return ScoreState(STATUS_SCHEDULED, 0, PERIOD_CLOCK_S, 0, 0)
        n = int(np.searchsorted(self._ts_ms, t_ms, "right"))
        home = int(self._home[n - 1]) if n else 0
        away = int(self._away[n - 1]) if n else 0
        if t_ms >= self.end_ms:
            return ScoreState(STATUS_FINISHED, self.periods[-1].number, 0, *self.final)
        period = self.periods[0]
        for p in self.periods:
            if t_ms >= p.start_ms:
                period = p
        return ScoreState(STATUS_LIVE, period.number, period.clock_left(t_ms), home, away)

    def margin_at(self, t_ms: np.ndarray) -> np.ndarray:
        """Home minus away points at each instant (vectorized)."""
        n = np.searchsorted(self._ts_ms, t_ms, "right")
        diff = np.concatenate([[0], self._home - self._away])
        return diff[n].astype(np.float64)

    def remaining_at(self, t_ms: np.ndarray) -> np.ndarray:
        """Game-clock time left at each instant as a fraction of regulation (0 at the final buzzer)."""
        t = np.asarray(t_ms, dtype=np.int64)
        starts = np.array([p.start_ms for p in self.periods], dtype=np.int64)
        ends = np.array([p.end_ms for p in self.periods], dtype=np.int64)
        clocks = np.array([p.clock_s for p in self.periods], dtype=np.int64)
        run_before = np.concatenate([[0], np.cumsum(clocks)[:-1]]).astype(np.float64)
        # `_elapsed_at` for every instant at once, with the same arithmetic (so the same floats).
        i = np.maximum(np.searchsorted(starts, t, "right") - 1, 0)
        span = np.maximum(ends[i] - starts[i], 1)
        elapsed = np.where(
            t < starts[0],
            0.0,
            np.where(
                t < ends[i],
                run_before[i] + clocks[i] * (t - starts[i]) / span,
                run_before[i] + clocks[i],
            ),
        )
        left = self.total_clock_s - elapsed
        left[t >= self.end_ms] = 0.0
        return left / REGULATION_CLOCK_S

    def elapsed_fraction(self, t_ms: np.ndarray) -> np.ndarray:
        """Share of the whole game's clock (overtimes included) run at each instant, 1 from the buzzer on."""
        return 1.0 - self.remaining_at(t_ms) * REGULATION_CLOCK_S / self.total_clock_s

    @property
    def volatility(self) -> float:
        """Sum of the squared basket values of both teams: the variance scale of the margin's path.

        With baskets at uniform instants, the margin at clock share `s` is about `s` times the final margin
        plus noise of variance `s (1 - s) volatility`.
        """
        return float(np.sum(self._points.astype(np.float64) ** 2))

    def plays_until(self, t_ms: int) -> list[Play]:
        """Every basket scored by `t_ms`, in order."""
        n = int(np.searchsorted(self._ts_ms, t_ms, "right"))
        plays = []
        for i in range(n):
            period = self._period_of_elapsed(float(self._elapsed[i]))
            plays.append(
                Play(
                    ts_ms=int(self._ts_ms[i]),
                    period=period.number,
                    clock_s=period.clock_left(int(self._ts_ms[i])),
                    side="home" if self._side[i] == 0 else "away",
                    points=int(self._points[i]),
                    home_points=int(self._home[i]),
                    away_points=int(self._away[i]),
                )
            )
        return plays


def _baskets(rng: np.random.Generator, points: int) -> np.ndarray:
    """Basket values summing exactly to `points`."""
    out: list[int] = []
    left = points
    while left > 0:
        b = min(int(rng.choice(_BASKETS, p=_BASKET_P)), left)
        out.append(b)
        left -= b
    return np.array(out, dtype=np.int64)


def _layout(tip_ms: int, end_ms: int, overtimes: int) -> tuple[Period, ...]:
    """Periods spread over [tip_ms, end_ms]: play shares by clock length, breaks between periods."""
    lengths = [PERIOD_CLOCK_S] * REGULATION_PERIODS + [OVERTIME_CLOCK_S] * overtimes
    breaks = list(_BREAK_AFTER) + [_OVERTIME_BREAK] * overtimes
    play_share = 1.0 - sum(breaks)
    span = end_ms - tip_ms
    clock_total = sum(lengths)
    periods = []
    t = float(tip_ms)
    for i, length in enumerate(lengths):
        stop = t + span * play_share * length / clock_total
        periods.append(Period(i + 1, int(t), int(stop), length))
        if i < len(breaks):
            t = stop + span * breaks[i]
    last = periods[-1]
    periods[-1] = Period(last.number, last.start_ms, end_ms, last.clock_s)
    return tuple(periods)


@functools.lru_cache(maxsize=512)
def game_score(game: Game, seed: int) -> GameScore:
    """The (cached) score process of a game under a seed."""
    return GameScore(game, seed)
