"""The simulated world: a deterministic schedule of games per series, their lifecycle and the clock.

The schedule of a season depends only on the seed, the series and the calendar, so it is the same across
restarts; only the `live_games` injection depends on the start instant. Each game carries the lifecycle
times of its event and two markets (created, open, tip-off, final buzzer, close, determined, settled).
Market paths (quotes and trades) are generated lazily per game and kept in an LRU cache.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from statistics import NormalDist
from zoneinfo import ZoneInfo

import numpy as np

from kalshi_pipeline.simulator.config import SimulatorConfig
from kalshi_pipeline.simulator.maintenance import Maintenance
from kalshi_pipeline.simulator.market_model.flow import MarketSummary, market_summary
from kalshi_pipeline.simulator.market_model.game_path import GamePath
from kalshi_pipeline.simulator.market_model.path import BookLadder, MarketPath, MarketState
from kalshi_pipeline.simulator.market_model.prices import EMPTY_ASK, EMPTY_BID
from kalshi_pipeline.simulator.sports import SERIES, SeriesSpec, Team

ET = ZoneInfo("America/New_York")
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
HISTORY_DAYS = 470
"""How far back the world reaches (at least 15 months)."""
FUTURE_DAYS = 35
"""How far ahead games are scheduled (markets are created 30 days before they open)."""
LIVE_WINDOW_DAYS = 90
"""Markets settled more than this many days ago (rounded to a UTC midnight) are archived."""
SETTLEMENT_TIMER_S = 300
CALLED_OFF_SHARE = 0.04
"""Share of seeded (not injected) games called off tied at the final buzzer: both markets settle scalar."""
DAY_MS = 86_400_000
_NAMESPACE = uuid.UUID("6f1c9f59-3c55-4d8f-9a55-7a4bb7f3f0c1")


class Clock:
    """The exchange clock: starts at `start` (default: now) and advances with real time."""

    def __init__(self, start: datetime | None = None) -> None:
        self._mono0 = time.monotonic()
        self._start_ms = int((start.timestamp() if start else time.time()) * 1000)

    @property
    def start_ms(self) -> int:
        """The instant the clock started at (Unix ms)."""
        return self._start_ms

    def now_ms(self) -> int:
        """The current exchange time in Unix milliseconds."""
        return self._start_ms + int((time.monotonic() - self._mono0) * 1000)


@dataclass(frozen=True, slots=True)
class Game:
    """One scheduled game: its event, two markets and every lifecycle instant (Unix seconds)."""

    series: SeriesSpec
    event_ticker: str
    away: Team
    home: Team
    game_date: date
    tip_s: int
    end_s: int
    created_s: int
    open_s: int
    close_s: int
    determined_s: int
    settled_s: int
    home_p_tip: float
    final_margin: float
    margin_sd: float
    injected: bool = False
    pauses: tuple[tuple[int, int], ...] = ()
    """The exchange's maintenance windows (Unix ms) while the markets are open: no trade prints there."""

    @property
    def home_ticker(self) -> str:
        """Ticker of the market on the home team winning."""
        return f"{self.event_ticker}-{self.home.code}"

    @property
    def away_ticker(self) -> str:
        """Ticker of the market on the away team winning."""
        return f"{self.event_ticker}-{self.away.code}"

    @property
    def market_tickers(self) -> tuple[str, str]:
        """The game's two market tickers, away team first (as the event ticker lists them)."""
        return (self.away_ticker, self.home_ticker)

    @property
    def home_wins(self) -> bool:
        """Whether the home team wins (decided by the final score margin)."""
        return self.final_margin > 0

    @property
    def tied(self) -> bool:
        """Whether the game ended tied: called off at the final buzzer, settled as a scalar at 0.50."""
        return self.final_margin == 0

    @property
    def fair_home_final(self) -> float:
        """The home market's value at the end: 1 (home wins), 0 (away wins) or 0.5 (tied)."""
        return 0.5 if self.tied else (1.0 if self.home_wins else 0.0)

    @property
    def expected_expiration_s(self) -> int:
        """Kalshi's expected expiration for a game: about three hours after tip-off."""
        return self.tip_s + 3 * 3600

    @property
    def scheduled_close_s(self) -> int:
        """The close time shown until the game ends (generous, to allow postponements)."""
        return self.tip_s + 14 * 86400

    @property
    def milestone_id(self) -> str:
        """The stable UUID of the game's milestone."""
        return str(uuid.uuid5(_NAMESPACE, f"milestone:{self.event_ticker}"))

    def team_for(self, market_ticker: str) -> Team:
        """The team whose win a market's YES side pays on."""
        return self.home if market_ticker == self.home_ticker else self.away

    def yes_wins(self, market_ticker: str) -> bool:
        """Whether a market of this game resolves to Yes (its team wins; never for a tied game)."""
        return not self.tied and (market_ticker == self.home_ticker) == self.home_wins

    def result(self, market_ticker: str) -> str:
        """The market's `result` once determined: `yes`, `no`, or `scalar` for a tied game."""
        if self.tied:
            return "scalar"
        return "yes" if self.yes_wins(market_ticker) else "no"

    def settlement_pips(self, market_ticker: str) -> int:
        """What one YES contract pays at settlement, in pips: 10000, 0, or 5000 for a tied game."""
        if self.tied:
            return 5000
        return 10000 if self.yes_wins(market_ticker) else 0

    def status_at(self, now_s: int) -> str:
        """The market object status at `now_s` (both markets of a game share it)."""
        if now_s < self.open_s:
            return "initialized"
        if now_s < self.close_s:
            return "active"
        if now_s < self.determined_s:
            return "closed"
        if now_s < self.settled_s:
            return "determined"
        return "finalized"

    def close_at(self, now_s: int) -> int:
        """The `close_time` as shown at `now_s`: scheduled until the game ends, then the real close."""
        return self.close_s if now_s >= self.close_s else self.scheduled_close_s


@functools.cache
def team_target_id(team: Team) -> str:
    """A stable structured-target UUID for a team."""
    return str(uuid.uuid5(_NAMESPACE, f"team:{team.code}"))


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(
        [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    )


def event_ticker_for(series: SeriesSpec, tip_s: int, away: Team, home: Team) -> str:
    """`{SERIES}-{YY}{MON}{DD}{AWAY}{HOME}` with the Eastern-time date of tip-off."""
    local = datetime.fromtimestamp(tip_s, ET)
    return f"{series.series_ticker}-{local:%y}{MONTHS[local.month - 1]}{local:%d}{away.code}{home.code}"


class World:
    """Every game of every configured series, indexed for the REST layer, plus the path cache."""

    def __init__(
        self, config: SimulatorConfig, clock: Clock | None = None, cache_size: int = 160
    ) -> None:
        self.config = config
        self.seed = config.seed
        self.clock = clock or Clock(config.now)
        self.maintenance = Maintenance.parse(config.maintenance, config.maintenance_windows)
        span_ms = (HISTORY_DAYS + FUTURE_DAYS + 60) * DAY_MS
        start_ms = self.clock.start_ms
        self._windows = self.maintenance.windows(start_ms - span_ms, start_ms + span_ms)
        self.series: dict[str, SeriesSpec] = {t: SERIES[t] for t in config.series}
        start_s = self.clock.start_ms // 1000
        games: list[Game] = []
        for spec in self.series.values():
            scheduled = self._schedule(spec, start_s) if config.schedule else []
            scheduled.extend(self._inject_live(spec, start_s, scheduled, config.live_games))
            games.extend(scheduled)
        games.sort(key=lambda g: (-g.tip_s, g.event_ticker))
        self.games: list[Game] = games
        self.by_event: dict[str, Game] = {g.event_ticker: g for g in games}
        self.by_market: dict[str, Game] = {}
        for g in games:
            for ticker in g.market_tickers:
                self.by_market[ticker] = g
        self.by_milestone: dict[str, Game] = {g.milestone_id: g for g in games}
        self._cache: OrderedDict[str, GamePath] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._summaries: dict[str, MarketSummary] = {}

    # -- time -----------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """Current exchange time (Unix ms)."""
        return self.clock.now_ms()

    def cutoff_s(self, now_s: int) -> int:
        """The historical cutoff at `now_s`: UTC midnight `LIVE_WINDOW_DAYS` days earlier."""
        return (now_s - LIVE_WINDOW_DAYS * 86400) // 86400 * 86400

    def is_archived(self, game: Game, now_s: int) -> bool:
        """Whether a game's markets settled before the historical cutoff (historical endpoints only)."""
        return game.settled_s <= now_s and game.settled_s < self.cutoff_s(now_s)

    # -- paths ----------------------------------------------------------------------------------------
    def game_path(self, game: Game) -> GamePath:
        """The (cached) quote and trade paths of a game's two markets."""
        with self._lock:
            path = self._cache.get(game.event_ticker)
            if path is not None:
                self._cache.move_to_end(game.event_ticker)
                return path
        path = GamePath(game, self.seed)
        with self._lock:
            self._cache[game.event_ticker] = path
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return path

    def market_path(self, ticker: str) -> MarketPath:
        """The path of one market (KeyError for unknown tickers)."""
        return self.game_path(self.by_market[ticker]).market(ticker)

    def market_state(self, ticker: str, now_ms: int) -> MarketState:
        """A market's trading state at `now_ms`, equal to `market_path(ticker).state_at(now_ms)`.

        Before the market opens nothing has happened. A day after it closed, the state is its final
        numbers (empty book, nothing in the last 24 hours), which come from a cheap summary instead
        of the full path: listing pages of finished markets must not generate every game.
        """
        game = self.by_market[ticker]
        if now_ms < game.open_s * 1000:
            return MarketState(
                EMPTY_BID, EMPTY_ASK, 0, 0, None, 0, 0, 0, EMPTY_BID, EMPTY_ASK, None
            )
        if now_ms < game.close_s * 1000 + DAY_MS:
            return self.market_path(ticker).state_at(now_ms)
        summary = self._summaries.get(ticker)
        if summary is None:
            summary = market_summary(game, ticker, self.seed)
            self._summaries[ticker] = summary
        return MarketState(
            yes_bid=EMPTY_BID,
            yes_ask=EMPTY_ASK,
            yes_bid_size=0,
            yes_ask_size=0,
            last_price=summary.last_price,
            volume=summary.volume,
            volume_24h=0,
            open_interest=summary.open_interest,
            previous_yes_bid=EMPTY_BID,
            previous_yes_ask=EMPTY_ASK,
            previous_price=summary.last_price,
        )

    def book_at(self, ticker: str, now_ms: int, depth: int = 0) -> BookLadder:
        """A market's order book at `now_ms` (empty before it opens, without generating its path)."""
        if now_ms < self.by_market[ticker].open_s * 1000:
            return BookLadder((), ())
        return self.market_path(ticker).book_at(now_ms, depth)

    # -- schedule -------------------------------------------------------------------------------------
    def _game_length_s(self, spec: SeriesSpec, rng: np.random.Generator) -> int:
        if self.config.game_minutes is not None:
            return max(60, int(self.config.game_minutes * 60 * (1 + rng.uniform(-0.03, 0.03))))
        minutes = spec.typical_game_minutes + float(np.clip(rng.normal(0, 7), -15, 25))
        return int(minutes * 60)

    def _make_game(
        self,
        spec: SeriesSpec,
        away: Team,
        home: Team,
        tip_s: int,
        rating_edge: float,
        injected: bool = False,
    ) -> Game:
        ticker = event_ticker_for(spec, tip_s, away, home)
        rng = _rng(self.seed, "game", ticker)
        length = self._game_length_s(spec, rng)
        end_s = tip_s + length
        p_tip = NormalDist().cdf((rating_edge + spec.home_advantage) / spec.margin_sd)
        p_tip = float(np.clip(p_tip + rng.normal(0, 0.03), 0.05, 0.95))
        mu = spec.margin_sd * NormalDist().inv_cdf(p_tip)
        margin = float(rng.normal(mu, spec.margin_sd))
        if abs(margin) < 0.5:
            margin = math.copysign(0.5, margin if margin else 1.0)
        open_s = (tip_s - 2 * 86400) // 3600 * 3600
        close_s = end_s + int(rng.integers(20, 120))
        determined_s = close_s + int(rng.integers(60, 240))
        if not injected and rng.random() < CALLED_OFF_SHARE:
            margin = 0.0  # called off tied at the final buzzer (see `Game.tied`)
        return Game(
            series=spec,
            event_ticker=ticker,
            away=away,
            home=home,
            game_date=datetime.fromtimestamp(tip_s, ET).date(),
            tip_s=tip_s,
            end_s=end_s,
            created_s=open_s - 30 * 86400,
            open_s=open_s,
            close_s=close_s,
            determined_s=determined_s,
            settled_s=determined_s + SETTLEMENT_TIMER_S,
            home_p_tip=p_tip,
            final_margin=margin,
            margin_sd=spec.margin_sd,
            injected=injected,
            pauses=self._pauses(open_s * 1000, close_s * 1000),
        )

    def _pauses(self, lo_ms: int, hi_ms: int) -> tuple[tuple[int, int], ...]:
        """The maintenance windows overlapping `[lo_ms, hi_ms)` (from the list covering the whole world)."""
        first = bisect.bisect_right(self._windows, (lo_ms, lo_ms)) - 1
        return tuple(w for w in self._windows[max(first, 0) :] if w[0] < hi_ms and w[1] > lo_ms)

    def _schedule(self, spec: SeriesSpec, start_s: int) -> list[Game]:
        first = start_s - HISTORY_DAYS * 86400
        last = start_s + FUTURE_DAYS * 86400
        first_year = datetime.fromtimestamp(first, UTC).year - 1
        last_year = datetime.fromtimestamp(last, UTC).year
        games: list[Game] = []
        for year in range(first_year, last_year + 1):
            for game in self._season(spec, year):
                if first <= game.tip_s <= last:
                    games.append(game)
        return games

    def _season(self, spec: SeriesSpec, year: int) -> list[Game]:
        """The regular season starting in `year`: every team plays `games_per_team` games."""
        rng = _rng(self.seed, spec.series_ticker, "season", year)
        teams = list(spec.teams)
        n = len(teams)
        ratings = rng.normal(0.0, spec.rating_sd, n)

        # Rounds of random perfect matchings; home side balances each team's home count.
        home_count = np.zeros(n, dtype=int)
        pending: list[tuple[int, int]] = []
        for _ in range(spec.games_per_team):
            perm = rng.permutation(n)
            for a, b in zip(perm[0::2], perm[1::2], strict=True):
                if home_count[a] < home_count[b] or (
                    home_count[a] == home_count[b] and rng.random() < 0.5
                ):
                    home, away = int(a), int(b)
                else:
                    home, away = int(b), int(a)
                home_count[home] += 1
                pending.append((away, home))

        start = date(year, *spec.season_start) + timedelta(days=int(rng.integers(0, 4)))
        end = date(year + 1, *spec.season_end)
        days: list[date] = []
        day = start
        while day <= end:
            if not any(date(day.year, *lo) <= day <= date(day.year, *hi) for lo, hi in spec.breaks):
                days.append(day)
            day += timedelta(days=1)
        weekday_factor = (0.9, 1.1, 1.25, 0.75, 1.2, 1.05, 0.75)

        games: list[Game] = []
        last_played = np.full(n, -10, dtype=int)
        index = 0
        while pending:
            if index < len(days):
                day = days[index]
            else:
                day = days[-1] + timedelta(days=index - len(days) + 1)
            remaining_days = max(len(days) - index, 1)
            target = len(pending) / remaining_days * weekday_factor[day.weekday()]
            target = int(np.clip(round(target + rng.normal(0, 1.2)), 1, n // 2))
            busy: set[int] = set()
            chosen: list[tuple[int, int]] = []
            for rested in (True, False):
                for pair in pending:
                    if len(chosen) >= target:
                        break
                    away, home = pair
                    if away in busy or home in busy or pair in chosen:
                        continue
                    if rested and (
                        last_played[away] == index - 1 or last_played[home] == index - 1
                    ):
                        continue
                    chosen.append(pair)
                    busy.update(pair)
            for pair in chosen:
                pending.remove(pair)
            for away, home in chosen:
                last_played[away] = last_played[home] = index
                home_team = teams[home]
                slots = (
                    spec.west_tipoff_slots_et
                    if home_team.zone in ("PT", "MT")
                    else spec.tipoff_slots_et
                )
                minutes = int(slots[int(rng.integers(0, len(slots)))])
                local = datetime(
                    day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=ET
                )
                edge = float(ratings[home] - ratings[away])
                games.append(
                    self._make_game(spec, teams[away], home_team, int(local.timestamp()), edge)
                )
            index += 1
        return games

    def _inject_live(
        self, spec: SeriesSpec, start_s: int, scheduled: list[Game], count: int
    ) -> list[Game]:
        """`count` extra games that tipped off a few minutes before the start, staggered."""
        if count <= 0:
            return []
        rng = _rng(self.seed, spec.series_ticker, "live", start_s)
        length_s = self._game_length_s(spec, _rng(self.seed, "live-length"))
        existing = {g.event_ticker for g in scheduled}
        injected: list[Game] = []
        used: set[str] = set()
        for i in range(count):
            offset_s = int(min(60 + 180 * i, length_s * 0.6 * (i + 1) / count))
            tip_s = start_s - offset_s
            game_date = datetime.fromtimestamp(tip_s, ET).date()
            playing = {
                code
                for g in scheduled + injected
                if g.game_date == game_date
                for code in (g.away.code, g.home.code)
            }
            free = [t for t in spec.teams if t.code not in playing and t.code not in used]
            pool = free if len(free) >= 2 else [t for t in spec.teams if t.code not in used]
            if len(pool) < 2:
                pool = list(spec.teams)
            while True:
                picks = rng.choice(len(pool), size=2, replace=False)
                away, home = pool[int(picks[0])], pool[int(picks[1])]
                if event_ticker_for(spec, tip_s, away, home) not in existing:
                    break
            used.update((away.code, home.code))
            edge = float(rng.normal(0.0, spec.rating_sd * 1.4))
            game = self._make_game(spec, away, home, tip_s, edge, injected=True)
            existing.add(game.event_ticker)
            injected.append(game)
        return injected
