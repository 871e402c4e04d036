"""Trade flow: the trades of one market apart from their prices, and a finished market's final numbers.

The flow comes from a per-market random stream independent of the quotes, and every market ends with a
closing print against the quote at the result's price, set at the final buzzer. So a finished market's
summary (last price, volume, open interest) is exact without generating its path, which keeps listing pages
of finished markets cheap.

The closing print falls in the last partial minute before `close_time` when the market closes mid-minute
(`closing_print_ms`), as the last trades before a real close do: the 1-minute candle holding it is the one
ending after `close_time`. Trades drawn inside a maintenance window (`Game.pauses`, a trading pause) print
in the first minute after it instead, so the market's totals do not depend on the windows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kalshi_pipeline.simulator.market_model.draws import seed_words, sizes, unique_times
from kalshi_pipeline.simulator.market_model.prices import quote_prices

if TYPE_CHECKING:
    from kalshi_pipeline.simulator.world import Game


def first_quote_ms(game: Game, seed: int) -> int:
    """When a game's markets post their first quotes: a few seconds after they open."""
    return game.open_s * 1000 + 1_000 + seed_words(seed, game.event_ticker, "first")[0] % 19_000


def closing_print_ms(game: Game, ticker: str, seed: int) -> int:
    """When a market's closing print happens: inside the last partial minute before `close_time`.

    The print lies strictly between the later of the final buzzer and the last whole minute, and the close;
    a market closing on a whole minute (no partial minute) or at the buzzer prints at the buzzer.
    """
    end_ms, close_ms = game.end_s * 1000, game.close_s * 1000
    lo = max(end_ms, game.close_s // 60 * 60_000)
    if close_ms - lo < 2:
        return end_ms
    return lo + 1 + seed_words(seed, ticker, "closing")[0] % (close_ms - lo - 1)


def _after_pauses(
    times: np.ndarray, pauses: tuple[tuple[int, int], ...], last_ms: int
) -> np.ndarray:
    """Trade times with those inside a pause moved into the minute after it, kept distinct and sorted."""
    moved = False
    for start, end in pauses:
        inside = (times >= start) & (times < end)
        if inside.any():
            shifted = end + (times[inside] - start) * 60_000 // max(end - start, 1)
            times = times.copy()
            times[inside] = np.minimum(shifted, last_ms)
            moved = True
    if not moved:
        return times
    ordered = np.sort(times)
    steps = np.arange(len(ordered), dtype=np.int64)
    return np.maximum.accumulate(ordered - steps) + steps


def activity_segments(game: Game, first_ms: int) -> list[tuple[int, int, float, float]]:
    """Activity segments as (start_ms, stop_ms, mean quote gap ms, mean trade gap ms)."""
    tip_ms, end_ms = game.tip_s * 1000, game.end_s * 1000
    hour = 3_600_000
    raw = [
        (first_ms, tip_ms - 6 * hour, 15 * 60_000.0, 25 * 60_000.0),
        (tip_ms - 6 * hour, tip_ms - hour, 3 * 60_000.0, 6 * 60_000.0),
        (tip_ms - hour, tip_ms, 45_000.0, 90_000.0),
        (tip_ms, end_ms, 4_000.0, 7_000.0),
    ]
    return [(max(start, first_ms + 1), stop, q, t) for start, stop, q, t in raw]


@dataclass(frozen=True, slots=True)
class TradeFlow:
    """The trades of one market apart from their prices, drawn from a stream of their own.

    The flow does not depend on the quote path, so a finished market's totals (volume, open
    interest, closing print) can be computed without generating quotes. Every market ends with a
    closing print (`closing_print_ms`) against the last quote, whose fair value is the result.
    """

    segment_counts: tuple[int, ...]
    count: np.ndarray
    taker_yes: np.ndarray
    direction: np.ndarray
    closing_half: int
    times: np.ndarray

    @staticmethod
    def draw(
        game: Game,
        ticker: str,
        seed: int,
        segments: list[tuple[int, int, float, float]],
        with_times: bool,
    ) -> TradeFlow:
        """Draw the flow (trade times only when `with_times`; the totals never need them)."""
        rng = np.random.default_rng(seed_words(seed, game.event_ticker, ticker, "flow"))
        spans = [max(stop - start, 0) for start, stop, _, _ in segments]
        lams = [span / gap for span, (_, _, _, gap) in zip(spans, segments, strict=True)]
        drawn = rng.poisson(lams)
        counts = tuple(int(min(k, span)) for k, span in zip(drawn, spans, strict=True))
        m = sum(counts) + 1  # plus the closing print
        count = sizes(rng, m, 12.0, 1.2)
        uniform = rng.random(2 * m)
        taker_yes = uniform[:m] < 0.5
        direction = np.where(uniform[m:] < 0.56, 1, -1)
        closing_half = int((30, 50, 100)[int(rng.integers(0, 3))])
        times = np.empty(0, dtype=np.int64)
        if with_times:
            parts = [
                unique_times(rng, start, stop, k)
                for (start, stop, _, _), k in zip(segments, counts, strict=True)
            ]
            closing = closing_print_ms(game, ticker, seed)
            drawn_times = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
            times = np.append(_after_pauses(drawn_times, game.pauses, closing - 1), closing)
        return TradeFlow(counts, count, taker_yes, direction, closing_half, times)

    def open_interest(self) -> np.ndarray:
        """Open interest after each trade (hundredths): a walk of opening and closing trades, >= 0."""
        walk = np.cumsum(self.direction * self.count)
        return (walk - np.minimum(0, np.minimum.accumulate(walk))).astype(np.int64)


@dataclass(frozen=True, slots=True)
class MarketSummary:
    """A finished market's final numbers: last trade price, total volume, final open interest."""

    last_price: int
    volume: int
    open_interest: int


def market_summary(game: Game, ticker: str, seed: int) -> MarketSummary:
    """The final numbers of a market, equal to its full path's but without generating the path."""
    flow = TradeFlow.draw(
        game, ticker, seed, activity_segments(game, first_quote_ms(game, seed)), False
    )
    bid, ask = _closing_quote(game.settlement_pips(ticker), flow.closing_half)
    last = ask if bool(flow.taker_yes[-1]) else bid
    walk = np.cumsum(flow.direction * flow.count)
    final_oi = int(walk[-1] - min(0, int(walk.min())))
    return MarketSummary(last, int(flow.count.sum()), final_oi)


@functools.cache
def _closing_quote(fair_pips: int, half: int) -> tuple[int, int]:
    """The quote at the final buzzer (fair value: the settlement) for a half-spread: (bid, ask) in pips."""
    bid, ask = quote_prices(np.array([float(fair_pips)]), np.array([float(half)]))
    return int(bid[0]), int(ask[0])
