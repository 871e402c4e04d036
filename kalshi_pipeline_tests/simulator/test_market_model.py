"""The market model: events, books and candles derived from one seeded path per game."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from kalshi_pipeline.simulator.config import SimulatorConfig
from kalshi_pipeline.simulator.market_model.candles import candles
from kalshi_pipeline.simulator.market_model.game_path import GamePath
from kalshi_pipeline.simulator.market_model.path import MarketPath, QuoteChange, TradePrint
from kalshi_pipeline.simulator.world import World

NOW = datetime(2026, 2, 10, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def world() -> World:
    return World(SimulatorConfig(seed=5, now=NOW))


@pytest.fixture(scope="module")
def finished(world: World) -> GamePath:
    game = next(g for g in world.games if g.settled_s < NOW.timestamp() - 86400)
    return world.game_path(game)


def quote_at(market: MarketPath, t_ms: int) -> QuoteChange:
    """The quote in effect at `t_ms`, which must exist."""
    quote = market.quote_at(t_ms)
    assert quote is not None, f"{market.ticker} has no quote at {t_ms}"
    return quote


def on_grid(prices: np.ndarray) -> bool:
    fine = (prices < 1000) | (prices >= 9000)
    return bool(np.all(np.where(fine, prices % 10 == 0, prices % 100 == 0)))


def test_quotes_on_the_tick_grid(finished: GamePath) -> None:
    for market in (finished.home, finished.away):
        bid, ask = market.bid[:-1], market.ask[:-1]
        assert on_grid(bid) and on_grid(ask)
        assert np.all(bid < ask)
        assert np.all(np.diff(market.quote_t) > 0)
        assert market.bid[-1] == 0 and market.ask[-1] == 10_000  # the book clears at close
        assert on_grid(market.trade_price)


def test_converges_to_the_result(finished: GamePath) -> None:
    game = finished.game
    winner = finished.home if game.home_wins else finished.away
    loser = finished.away if game.home_wins else finished.home
    end_ms = game.end_s * 1000
    assert quote_at(winner, end_ms).yes_bid >= 9000
    assert quote_at(loser, end_ms).yes_ask <= 1000
    tip_ms = game.tip_s * 1000
    home_mid = (
        quote_at(finished.home, tip_ms).yes_bid + quote_at(finished.home, tip_ms).yes_ask
    ) / 2
    away_mid = (
        quote_at(finished.away, tip_ms).yes_bid + quote_at(finished.away, tip_ms).yes_ask
    ) / 2
    assert abs(home_mid + away_mid - 10_000) < 600


def test_trade_flow_is_sparse_before_and_dense_during_the_game(finished: GamePath) -> None:
    game = finished.game
    t = finished.home.trade_t
    pre = np.sum(t < game.tip_s * 1000) / ((game.tip_s - game.open_s) / 3600)
    live = np.sum((t >= game.tip_s * 1000) & (t < game.end_s * 1000)) / (
        (game.end_s - game.tip_s) / 3600
    )
    assert live > 20 * pre
    assert np.median(np.diff(t[t >= game.tip_s * 1000])) < 15_000
    counts = finished.home.trade_count
    assert np.any(counts % 100 != 0) and np.all(counts > 0)
    assert np.all(finished.home.open_interest >= 0)


def test_events_between_and_state(finished: GamePath) -> None:
    market = finished.home
    game = finished.game
    t0, t1 = game.tip_s * 1000, game.tip_s * 1000 + 600_000
    events = market.events_between(t0, t1)
    assert events and all(t0 < e.ts_ms <= t1 for e in events)
    assert [e.ts_ms for e in events] == sorted(e.ts_ms for e in events)
    quotes = [e for e in events if isinstance(e, QuoteChange)]
    trades = [e for e in events if isinstance(e, TradePrint)]
    assert quotes and trades
    for trade in trades:
        quote = quote_at(market, trade.ts_ms)
        assert trade.yes_price == (quote.yes_ask if trade.taker_yes else quote.yes_bid)
    state = market.state_at(t1)
    assert state.volume == trades[-1].volume
    assert state.last_price == trades[-1].yes_price
    book = market.book_at(t1)
    assert book.yes[-1] == (state.yes_bid, state.yes_bid_size)
    assert book.no[-1] == (10_000 - state.yes_ask, state.yes_ask_size)
    assert [p for p, _ in book.yes] == sorted(p for p, _ in book.yes)
    assert market.book_at(t1) == book  # deterministic
    assert market.book_at(game.settled_s * 1000).yes == ()


def test_paths_are_deterministic(world: World) -> None:
    game = world.games[400]
    a = GamePath(game, world.seed)
    b = GamePath(game, world.seed)
    c = GamePath(game, world.seed + 1)
    assert np.array_equal(a.home.trade_t, b.home.trade_t)
    assert np.array_equal(a.away.bid, b.away.bid)
    assert a.home.trade_id(3) == b.home.trade_id(3)
    assert not np.array_equal(a.home.trade_t, c.home.trade_t)


def test_candles_count_every_trade(finished: GamePath) -> None:
    market = finished.home
    game = finished.game
    now_ms = int(NOW.timestamp() * 1000)
    minutes = candles(market, 1, game.open_s, game.settled_s + 60, now_ms)
    assert int(minutes.volume.sum()) == int(market.cum_volume[-1])
    partial = candles(market, 1, game.open_s, game.settled_s + 60, game.tip_s * 1000 + 90_000)
    assert partial.end_ts[-1] <= game.tip_s + 120
    assert int(partial.volume.sum()) == int(
        np.sum(market.trade_count[market.trade_t <= game.tip_s * 1000 + 90_000])
    )


def test_closing_print_and_trade_sizes(finished: GamePath) -> None:
    """Each market ends with a trade in the partial minute before its close; no trade exceeds the size it hit."""
    game = finished.game
    assert (
        game.close_s % 60 and game.close_s // 60 * 60 > game.end_s
    )  # closes mid-minute after the buzzer
    for market in (finished.home, finished.away):
        assert game.close_s // 60 * 60_000 < int(market.trade_t[-1]) < game.close_s * 1000
        assert int(market.trade_t[-2]) < game.end_s * 1000
        wins = (market is finished.home) == game.home_wins
        assert (market.trade_price[-1] >= 9900) if wins else (market.trade_price[-1] <= 100)
        qi = np.searchsorted(market.quote_t, market.trade_t, "right") - 1
        hit = np.where(market.taker_yes, market.ask_size[qi], market.bid_size[qi])
        assert np.all(market.trade_count <= hit)
        assert np.all(np.diff(market.trade_t) > 0)
