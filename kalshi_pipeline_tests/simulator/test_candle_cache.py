"""The rendered candle histories: every answer equals a fresh render, whatever the window, clock or bound."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from kalshi_pipeline.simulator import payloads
from kalshi_pipeline.simulator.config import SimulatorConfig
from kalshi_pipeline.simulator.market_model.candles import EMPTY_CANDLES, candles
from kalshi_pipeline.simulator.rest.candle_cache import CandleCache
from kalshi_pipeline.simulator.world import Game, World

NOW = datetime(2026, 2, 10, 20, 30, 17, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


@pytest.fixture(scope="module")
def world() -> World:
    return World(SimulatorConfig(seed=9, now=NOW, live_games=2, game_minutes=40))


@pytest.fixture(scope="module")
def finished(world: World) -> Game:
    return next(g for g in world.games if g.settled_s * 1000 < NOW_MS - 86_400_000)


@pytest.fixture(scope="module")
def live(world: World) -> Game:
    return next(g for g in world.games if g.injected and g.tip_s * 1000 < NOW_MS)


def fresh(
    world: World,
    ticker: str,
    start: int,
    end: int,
    period: int,
    now_ms: int,
    historical: bool = False,
) -> bytes:
    """The answer computed from the path and rendered by the standard library, as `JSONResponse` does."""
    if now_ms < world.by_market[ticker].open_s * 1000:
        arrays = EMPTY_CANDLES
    else:
        arrays = candles(world.market_path(ticker), period, start, end, now_ms)
    body = payloads.candles(arrays, historical=historical)
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def windows(game: Game, period: int, rng: random.Random, count: int) -> list[tuple[int, int]]:
    """Whole-life, edge and random windows around a game (aligned and not, empty and not)."""
    step = period * 60
    tip_end = -(-game.tip_s // step) * step
    fixed = [
        (game.open_s, game.close_s // 60 * 60),
        (0, game.close_s + 10 * step),
        (tip_end, tip_end),
        (tip_end + 1, tip_end + step),
        (tip_end - step + 1, tip_end - 1),
        (game.open_s - 3 * step, game.open_s),
        (game.close_s, game.close_s + 2 * step),
    ]
    lo, hi = game.open_s - 2 * step, game.close_s + 2 * step
    drawn = []
    for _ in range(count):
        a, b = sorted(rng.randint(lo, hi) for _ in range(2))
        drawn.append((a, b))
    return fixed + drawn


def test_candle_elements_hold_each_candle_once(world: World, finished: Game) -> None:
    ticker = finished.home_ticker
    arrays = candles(world.market_path(ticker), 1, 0, finished.close_s + 60, NOW_MS)
    for historical in (False, True):
        text, starts = payloads.candle_elements(arrays, historical)
        one_by_one = payloads.candles(arrays, historical=historical)
        assert len(starts) == len(one_by_one) + 1
        for i, candle in enumerate(one_by_one):
            assert json.loads(text[starts[i] : starts[i + 1] - 1]) == candle
        assert b"[" + text + b"]" == fresh(
            world, ticker, 0, finished.close_s + 60, 1, NOW_MS, historical
        )
    text, starts = payloads.candle_elements(EMPTY_CANDLES)
    assert text == b"" and starts.tolist() == [0]


def test_finished_market_windows_equal_fresh_renders(world: World, finished: Game) -> None:
    """A finished market's history is rendered once, complete; every window after slices it."""
    cache = CandleCache(world)
    rng = random.Random(1)
    for ticker in finished.market_tickers:
        for period in (1, 60, 1440):
            for historical in (False, True):
                for start, end in windows(finished, period, rng, 6):
                    got = cache.array_text(
                        ticker, start, end, period, NOW_MS, historical=historical
                    )
                    assert got == fresh(world, ticker, start, end, period, NOW_MS, historical)
                history = cache.history(ticker, period, historical)
                assert history is not None and history.complete
                start, end = finished.open_s, finished.close_s
                again = cache.array_text(
                    ticker, start, end, period, NOW_MS + 86_400_000, historical=historical
                )
                assert cache.history(ticker, period, historical) is history  # not rebuilt
                assert again == fresh(world, ticker, start, end, period, NOW_MS, historical)
    assert len(cache) == 2 * 3 * 2


def test_live_market_history_follows_the_clock(world: World, live: Game) -> None:
    """Closed minutes come from the history, the open one from the path; the history grows as the clock
    moves, and a clock set back (a pinned `now`) uses only what was final then."""
    cache = CandleCache(world)
    ticker = live.home_ticker
    rng = random.Random(2)
    instants = [NOW_MS, NOW_MS + 20_000, NOW_MS + 61_000, NOW_MS + 300_000, NOW_MS - 120_000]
    instants.append(live.close_s * 1000 + 3_600_000)  # after the close: complete
    answers: list[bytes] = []
    for now_ms in instants:
        for period in (1, 60):
            for start, end in windows(live, period, rng, 4):
                got = cache.array_text(ticker, start, end, period, now_ms, historical=False)
                assert got == fresh(world, ticker, start, end, period, now_ms), (now_ms, start, end)
        whole = cache.array_text(
            ticker, live.open_s, now_ms // 1000 + 60, 1, now_ms, historical=False
        )
        answers.append(whole)
        history = cache.history(ticker, 1, False)
        assert history is not None
        assert history.final_s >= now_ms // 1000 // 60 * 60
    assert len(answers[2]) > len(answers[0])  # a minute closed: its candle joined the answer
    assert answers[0] != answers[1]  # the open minute moved within it
    final = cache.history(ticker, 1, False)
    assert final is not None and final.complete


def test_live_market_answers_before_the_first_period_ends(world: World, live: Game) -> None:
    cache = CandleCache(world)
    ticker = live.away_ticker
    for now_ms in (live.open_s * 1000 - 1, live.open_s * 1000, live.open_s * 1000 + 59_000):
        got = cache.array_text(ticker, 0, live.close_s, 1, now_ms, historical=False)
        assert got == fresh(world, ticker, 0, live.close_s, 1, now_ms)
    assert cache.array_text(ticker, 0, live.close_s, 1440, NOW_MS, historical=True) == fresh(
        world, ticker, 0, live.close_s, 1440, NOW_MS, True
    )


def test_bound_compresses_then_drops_the_least_recently_used(world: World) -> None:
    games = [g for g in world.games if g.settled_s * 1000 < NOW_MS][:15]
    whole = {t: (g.open_s, g.close_s // 60 * 60) for g in games for t in g.market_tickers}
    tickers = list(whole)
    probe = CandleCache(world)
    probe.array_text(tickers[0], *whole[tickers[0]], 1, NOW_MS, historical=False)
    plain = probe.history(tickers[0], 1, False)
    assert plain is not None
    packed = plain.packed_copy()
    assert packed.nbytes * 5 < plain.nbytes
    cache = CandleCache(world, max_bytes=2 * plain.nbytes + 4 * packed.nbytes)
    for ticker in tickers:
        got = cache.array_text(ticker, *whole[ticker], 1, NOW_MS, historical=False)
        assert got == fresh(world, ticker, *whole[ticker], 1, NOW_MS)
        assert cache.nbytes <= cache.max_bytes
    newest = cache.history(tickers[-1], 1, False)
    assert newest is not None and not newest.packed  # the most recently used stay plain
    assert cache.packed_histories > 0  # beyond half the bound, older ones were compressed
    assert 0 < cache.packed_nbytes < cache.packed_histories * packed.nbytes * 2
    assert len(cache) < len(tickers) and cache.history(tickers[0], 1, False) is None  # then dropped
    for ticker in tickers:
        kept = cache.history(ticker, 1, False)
        if kept is not None and kept.packed:
            start, end = whole[ticker]
            middle = (start + end) // 2
            for a, b in ((start, end), (middle, end), (start, middle), (end, end)):
                got = cache.array_text(ticker, a, b, 1, NOW_MS, historical=False)
                assert got == fresh(world, ticker, a, b, 1, NOW_MS)
            assert cache.history(ticker, 1, False) is kept


def test_a_live_history_beyond_the_bound_is_dropped_and_rebuilt(world: World, live: Game) -> None:
    """Only complete histories are compressed: a live one that no longer fits is dropped, and the next
    request rebuilds it (it would otherwise have to extend a compressed text)."""
    ticker = live.away_ticker
    probe = CandleCache(world)
    probe.array_text(ticker, live.open_s, live.close_s, 1, NOW_MS, historical=False)
    grown = probe.history(ticker, 1, False)
    assert grown is not None and not grown.complete
    cache = CandleCache(world, max_bytes=grown.nbytes)  # half of it: not even one plain history
    for now_ms in (NOW_MS, NOW_MS + 61_000, NOW_MS + 125_000):
        got = cache.array_text(ticker, live.open_s, live.close_s, 1, now_ms, historical=False)
        assert got == fresh(world, ticker, live.open_s, live.close_s, 1, now_ms)
        assert len(cache) == 0


def test_turned_off_it_keeps_nothing_and_answers_the_same(world: World, live: Game) -> None:
    cache = CandleCache(world, max_bytes=0)
    ticker = live.home_ticker
    for now_ms in (NOW_MS, NOW_MS + 61_000):
        got = cache.array_text(ticker, live.open_s, live.close_s, 1, now_ms, historical=False)
        assert got == fresh(world, ticker, live.open_s, live.close_s, 1, now_ms)
    assert len(cache) == 0 and cache.nbytes == 0
