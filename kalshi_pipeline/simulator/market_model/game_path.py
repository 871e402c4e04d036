"""Generation of a game's two market paths from the seed: one fair home win probability, two quoted books.

Both markets (home team YES and away team YES) follow one fair home win probability: a slow logit random walk
before tip-off, then the belief implied by the game's score and clock (`kalshi_pipeline.simulator.scoring`)
during the game, which converges to 0 or 1 at the final buzzer. Each market quotes that fair value on the tick grid with its own spreads, sizes
and trade flow, so the away market's YES price is about 1 - the home market's.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from kalshi_pipeline.simulator.market_model.draws import (
    poisson_times,
    seed_words,
    sizes,
    sorted_unique,
)
from kalshi_pipeline.simulator.market_model.flow import TradeFlow, activity_segments, first_quote_ms
from kalshi_pipeline.simulator.market_model.path import MarketPath
from kalshi_pipeline.simulator.market_model.prices import EMPTY_ASK, EMPTY_BID, PIPS, quote_prices
from kalshi_pipeline.simulator.scoring import game_score

if TYPE_CHECKING:
    from kalshi_pipeline.simulator.world import Game


_NORMAL = NormalDist()


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, vectorized (erfc Chebyshev fit, relative error below 1.2e-7)."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (
        -z * z
        - 1.26551223
        + t
        * (
            1.00002368
            + t
            * (
                0.37409196
                + t
                * (
                    0.09678418
                    + t
                    * (
                        -0.18628806
                        + t
                        * (
                            0.27886807
                            + t
                            * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))
                        )
                    )
                )
            )
        )
    )
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - 0.5 * erfc, 0.5 * erfc)


class GamePath:
    """The two markets of one game, generated together so their prices stay complementary."""

    def __init__(self, game: Game, seed: int) -> None:
        self.game = game
        self.seed = seed
        words = seed_words(seed, game.event_ticker)
        rng = np.random.default_rng(words)
        tip_ms, end_ms = game.tip_s * 1000, game.end_s * 1000
        close_ms = game.close_s * 1000
        first = first_quote_ms(game, seed)
        segments = activity_segments(game, first)

        # Quote times per market: sparse long before tip-off, seconds apart in-game.
        quote_times: list[np.ndarray] = []
        for _side in range(2):
            qs = [np.array([first], dtype=np.int64)]
            for start, stop, q_gap, _t_gap in segments:
                qs.append(poisson_times(rng, start, stop, q_gap))
            qs.append(np.array([end_ms], dtype=np.int64))
            quote_times.append(sorted_unique(np.concatenate(qs)))

        # Fair home win probability on the union of both markets' quote times.
        grid = sorted_unique(np.concatenate(quote_times))
        fair = self._fair_home(rng, grid, tip_ms, end_ms)

        self.home = self._market(
            game.home_ticker,
            rng,
            words,
            quote_times[0],
            TradeFlow.draw(game, game.home_ticker, seed, segments, with_times=True),
            grid,
            fair,
            tip_ms,
            close_ms,
        )
        self.away = self._market(
            game.away_ticker,
            rng,
            words,
            quote_times[1],
            TradeFlow.draw(game, game.away_ticker, seed, segments, with_times=True),
            grid,
            1 - fair,
            tip_ms,
            close_ms,
        )

    def market(self, ticker: str) -> MarketPath:
        """The path of one of this game's markets."""
        if ticker == self.home.ticker:
            return self.home
        if ticker == self.away.ticker:
            return self.away
        raise KeyError(ticker)

    def _fair_home(
        self, rng: np.random.Generator, grid: np.ndarray, tip_ms: int, end_ms: int
    ) -> np.ndarray:
        game = self.game
        sigma = game.margin_sd
        p_tip = min(max(game.home_p_tip, 0.02), 0.98)
        mu = sigma * _NORMAL.inv_cdf(p_tip)
        fair = np.empty(len(grid), dtype=np.float64)

        pre = grid < tip_ms
        if pre.any():
            # Reverse-time logit random walk anchored on the tip-off price: the line drifts before the game.
            times = grid[pre][::-1]
            dt_h = np.diff(np.concatenate([[tip_ms], times])) * -1 / 3_600_000
            walk = np.cumsum(
                rng.normal(0.0, 1.0, len(times)) * 0.035 * np.sqrt(np.maximum(dt_h, 0))
            )
            logit = math.log(p_tip / (1 - p_tip)) + walk
            fair[pre] = (1.0 / (1.0 + np.exp(-logit)))[::-1]

        live = ~pre
        if live.any():
            # In play the belief follows the score and the game clock (`simulator.scoring`): the final
            # margin's prior N(mu, sigma^2) updated by the margin m at clock share s, which is about
            # s * final + noise of variance s (1 - s) V, so the prices are calibrated to the scoring process.
            score = game_score(game, self.seed)
            times = grid[live]
            margin = score.margin_at(times)
            share = np.clip(score.elapsed_fraction(times), 0.0, 1.0)
            noise = np.maximum(1.0 - share, 1e-9) * max(score.volatility, 1.0)
            precision = 1.0 / sigma**2 + share / noise
            mean = (mu / sigma**2 + margin / noise) / precision
            p = normal_cdf(mean * np.sqrt(precision))
            p = np.where(times >= end_ms, game.fair_home_final, p)
            fair[live] = p
        return fair

    @staticmethod
    def _market(
        ticker: str,
        rng: np.random.Generator,
        words: list[int],
        quote_t: np.ndarray,
        flow: TradeFlow,
        grid: np.ndarray,
        fair: np.ndarray,
        tip_ms: int,
        close_ms: int,
    ) -> MarketPath:
        n = len(quote_t)
        f = fair[np.searchsorted(grid, quote_t)] * PIPS
        half = np.where(
            quote_t >= tip_ms, rng.choice([30, 50, 100], n), rng.choice([50, 100, 150], n)
        ).astype(np.float64)
        # The last quote (at the final buzzer) takes its spread from the trade flow, so the closing
        # print can be priced without generating the path (see `MarketSummary`).
        half[-1] = flow.closing_half
        bid, ask = quote_prices(f, half)
        bid_size = sizes(rng, n, 250.0, 1.0)
        ask_size = sizes(rng, n, 250.0, 1.0)

        # The book is cleared when the market closes.
        quote_t = np.append(quote_t, close_ms)
        bid = np.append(bid, EMPTY_BID)
        ask = np.append(ask, EMPTY_ASK)

        trade_t = flow.times
        qi = np.searchsorted(quote_t, trade_t, "right") - 1
        taker_yes = flow.taker_yes
        price = np.where(taker_yes, ask[qi], bid[qi])
        count = flow.count
        # A trade never exceeds the size resting at the level it hits.
        np.maximum.at(ask_size, qi[taker_yes], count[taker_yes])
        np.maximum.at(bid_size, qi[~taker_yes], count[~taker_yes])
        bid_size = np.append(bid_size, 0)
        ask_size = np.append(ask_size, 0)
        return MarketPath(
            ticker,
            seed_words(*words, ticker),
            quote_t,
            bid,
            ask,
            bid_size,
            ask_size,
            trade_t,
            price.astype(np.int64),
            count.astype(np.int64),
            taker_yes,
            flow.open_interest(),
        )
