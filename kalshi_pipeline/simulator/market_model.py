"""The market model: every quote change and trade of a game's two markets, generated from the seed.

One `GamePath` per game holds two `MarketPath`s (home team YES and away team YES). Both follow one fair home
win probability: a slow logit random walk before tip-off, then the belief implied by a Brownian-bridge score
margin during the game, which converges to 0 or 1 at the final buzzer. Each market quotes that fair value
on the exchange's tick grid (`tapered_deci_cent`: 0.001 steps below 0.10 and above 0.90, 0.01 in between)
with its own spreads, sizes and trade flow, so the away market's YES price is about 1 - the home market's.

Everything the exchange serves is derived from the timestamped events of a `MarketPath`, so snapshots,
order books, trades and candlesticks agree with each other. Units inside the model are integers:
prices in "pips" of 0.0001 dollars (0..10000), counts in hundredths of a contract, times in Unix ms.

Trade flow (times, sizes, sides) comes from a per-market stream independent of the quotes, and every
market ends with a closing print at the final buzzer against a quote at the result's price. So a
finished market's final numbers (`market_summary`: last price, volume, open interest) are exact without
generating its path, which keeps listing pages of finished markets cheap.

API for streaming consumers (the WebSocket layer):

- `MarketPath.events_between(t0_ms, t1_ms)` -> ordered `QuoteChange` / `TradePrint` events with
  `t0_ms < ts_ms <= t1_ms` (a quote change sorts before a trade of the same millisecond).
- `MarketPath.book_at(t_ms, depth=0)` -> `OrderBook` (YES and NO bid ladders, ascending) at `t_ms`.
- `MarketPath.quote_at(t_ms)` -> best quote in effect at `t_ms`; `MarketPath.state_at(t_ms)` -> `MarketState`
  (best quote, last price, volume, open interest and the values 24 hours earlier).
- `MarketPath.trade_id(index)` -> the stable trade id of the index-th trade.
"""

from __future__ import annotations

import functools
import hashlib
import math
import uuid
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from kalshi_pipeline.simulator.world import Game

PIPS = 10_000
"""Price units per dollar (prices are integers in 0.0001 dollars)."""
EMPTY_BID = 0
EMPTY_ASK = PIPS
MIN_BID, MAX_BID = 10, 9980
MIN_ASK, MAX_ASK = 20, 9990
PRICE_RANGES: tuple[tuple[int, int, int], ...] = (
    (0, 1000, 10),
    (1000, 9000, 100),
    (9000, 10000, 10),
)
"""The tick grid as (start, end, step) in pips: Kalshi's `tapered_deci_cent` structure."""

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


def tick_below(pips: np.ndarray) -> np.ndarray:
    """Snap prices (float pips) down to the tick grid."""
    fine = (pips < 1000) | (pips >= 9000)
    return np.where(fine, np.floor(pips / 10) * 10, np.floor(pips / 100) * 100).astype(np.int64)


def tick_above(pips: np.ndarray) -> np.ndarray:
    """Snap prices (float pips) up to the tick grid."""
    fine = (pips <= 1000) | (pips > 9000)
    return np.where(fine, np.ceil(pips / 10) * 10, np.ceil(pips / 100) * 100).astype(np.int64)


def tick_size(pips: int) -> int:
    """The grid step at and just above a price (pips)."""
    return 10 if pips < 1000 or pips >= 9000 else 100


@dataclass(frozen=True, slots=True)
class QuoteChange:
    """The best YES bid / ask (and their sizes) changed at `ts_ms`; an empty side is bid 0 / ask 10000."""

    ticker: str
    ts_ms: int
    index: int
    yes_bid: int
    yes_ask: int
    yes_bid_size: int
    yes_ask_size: int


@dataclass(frozen=True, slots=True)
class TradePrint:
    """A trade of `count` hundredths of a contract at YES price `yes_price` pips."""

    ticker: str
    ts_ms: int
    index: int
    trade_id: str
    yes_price: int
    count: int
    taker_yes: bool
    open_interest: int
    volume: int


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Resting bids only, as Kalshi reports them: YES bids and NO bids, each ascending by price (pips)."""

    yes: tuple[tuple[int, int], ...]
    no: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class MarketState:
    """A market's trading numbers at one instant (prices in pips, counts in hundredths; None = never)."""

    yes_bid: int
    yes_ask: int
    yes_bid_size: int
    yes_ask_size: int
    last_price: int | None
    volume: int
    volume_24h: int
    open_interest: int
    previous_yes_bid: int
    previous_yes_ask: int
    previous_price: int | None


@dataclass(frozen=True, slots=True)
class CandleArrays:
    """Candles of one market for one period length, column-wise; `previous` and price columns use -1 for none."""

    end_ts: np.ndarray
    bid_open: np.ndarray
    bid_high: np.ndarray
    bid_low: np.ndarray
    bid_close: np.ndarray
    ask_open: np.ndarray
    ask_high: np.ndarray
    ask_low: np.ndarray
    ask_close: np.ndarray
    has_trade: np.ndarray
    price_open: np.ndarray
    price_high: np.ndarray
    price_low: np.ndarray
    price_close: np.ndarray
    price_mean: np.ndarray
    price_previous: np.ndarray
    volume: np.ndarray
    open_interest: np.ndarray

    def __len__(self) -> int:
        return len(self.end_ts)


EMPTY_CANDLES = CandleArrays(
    **{
        name: np.empty(0, dtype=bool if name == "has_trade" else np.int64)
        for name in CandleArrays.__dataclass_fields__
    }
)
"""No candles (a market that has not opened yet)."""


def _seed_words(*parts: object) -> list[int]:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique's hashing is slower for these sizes)."""
    ordered = np.sort(values, kind="stable")
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _poisson_times(
    rng: np.random.Generator, start: int, end: int, mean_gap_ms: float
) -> np.ndarray:
    if end <= start:
        return np.empty(0, dtype=np.int64)
    n = rng.poisson((end - start) / mean_gap_ms)
    return np.sort(rng.integers(start, end, size=n, dtype=np.int64))


def _sizes(rng: np.random.Generator, n: int, median: float, sigma: float) -> np.ndarray:
    # exp of a normal draw: the same distribution as rng.lognormal, several times faster.
    raw = np.exp(math.log(median) + sigma * rng.standard_normal(n))
    whole = rng.random(n) < 0.8
    centi = np.where(whole, np.maximum(np.round(raw), 1) * 100, np.round(raw * 100))
    return np.maximum(centi, 1).astype(np.int64)


class MarketPath:
    """All quote changes and trades of one market, with derived state, books and candles."""

    def __init__(
        self,
        ticker: str,
        seed_words: list[int],
        quote_t: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        bid_size: np.ndarray,
        ask_size: np.ndarray,
        trade_t: np.ndarray,
        trade_price: np.ndarray,
        trade_count: np.ndarray,
        taker_yes: np.ndarray,
        open_interest: np.ndarray,
    ) -> None:
        self.ticker = ticker
        self._seed_words = seed_words
        self.quote_t = quote_t
        self.bid = bid
        self.ask = ask
        self.bid_size = bid_size
        self.ask_size = ask_size
        self.trade_t = trade_t
        self.trade_price = trade_price
        self.trade_count = trade_count
        self.taker_yes = taker_yes
        self.open_interest = open_interest
        self.cum_volume = np.cumsum(trade_count)
        self.cum_notional = np.cumsum(trade_count * trade_price)
        self._trade_ids: dict[int, str] = {}

    # -- events -------------------------------------------------------------------------------------
    def trade_id(self, index: int) -> str:
        """The stable UUID of the index-th trade of this market."""
        cached = self._trade_ids.get(index)
        if cached is None:
            digest = hashlib.blake2b(
                f"{self.ticker}|{index}|{self._seed_words[0]}".encode(), digest_size=16
            ).digest()
            cached = str(uuid.UUID(bytes=digest, version=4))
            self._trade_ids[index] = cached
        return cached

    def quote_change(self, index: int) -> QuoteChange:
        """The index-th quote change."""
        return QuoteChange(
            self.ticker,
            int(self.quote_t[index]),
            index,
            int(self.bid[index]),
            int(self.ask[index]),
            int(self.bid_size[index]),
            int(self.ask_size[index]),
        )

    def trade(self, index: int) -> TradePrint:
        """The index-th trade."""
        return TradePrint(
            self.ticker,
            int(self.trade_t[index]),
            index,
            self.trade_id(index),
            int(self.trade_price[index]),
            int(self.trade_count[index]),
            bool(self.taker_yes[index]),
            int(self.open_interest[index]),
            int(self.cum_volume[index]),
        )

    def trade_range(self, t0_ms: int, t1_ms: int) -> range:
        """Indices of the trades with `t0_ms < ts_ms <= t1_ms`."""
        lo = int(np.searchsorted(self.trade_t, t0_ms, side="right"))
        hi = int(np.searchsorted(self.trade_t, t1_ms, side="right"))
        return range(lo, hi)

    def events_between(self, t0_ms: int, t1_ms: int) -> list[QuoteChange | TradePrint]:
        """Quote changes and trades with `t0_ms < ts_ms <= t1_ms`, in time order (quotes first on ties)."""
        q_lo = int(np.searchsorted(self.quote_t, t0_ms, side="right"))
        q_hi = int(np.searchsorted(self.quote_t, t1_ms, side="right"))
        events: list[QuoteChange | TradePrint] = [self.quote_change(i) for i in range(q_lo, q_hi)]
        events.extend(self.trade(i) for i in self.trade_range(t0_ms, t1_ms))
        events.sort(key=lambda e: (e.ts_ms, isinstance(e, TradePrint), e.index))
        return events

    # -- state ----------------------------------------------------------------------------------------
    def quote_index_at(self, t_ms: int) -> int:
        """Index of the quote change in effect at `t_ms`, or -1 before the first one."""
        return int(np.searchsorted(self.quote_t, t_ms, side="right")) - 1

    def trade_index_at(self, t_ms: int) -> int:
        """Index of the last trade at or before `t_ms`, or -1 before the first one."""
        return int(np.searchsorted(self.trade_t, t_ms, side="right")) - 1

    def quote_at(self, t_ms: int) -> QuoteChange | None:
        """The best quote in effect at `t_ms` (None before the market's first quote)."""
        i = self.quote_index_at(t_ms)
        return self.quote_change(i) if i >= 0 else None

    def state_at(self, t_ms: int) -> MarketState:
        """Best quote, last price, volumes and open interest at `t_ms`, plus the same 24 hours earlier."""
        qi = self.quote_index_at(t_ms)
        ti = self.trade_index_at(t_ms)
        day_ago = t_ms - 86_400_000
        pqi = self.quote_index_at(day_ago)
        pti = self.trade_index_at(day_ago)
        volume = int(self.cum_volume[ti]) if ti >= 0 else 0
        volume_day_ago = int(self.cum_volume[pti]) if pti >= 0 else 0
        return MarketState(
            yes_bid=int(self.bid[qi]) if qi >= 0 else EMPTY_BID,
            yes_ask=int(self.ask[qi]) if qi >= 0 else EMPTY_ASK,
            yes_bid_size=int(self.bid_size[qi]) if qi >= 0 else 0,
            yes_ask_size=int(self.ask_size[qi]) if qi >= 0 else 0,
            last_price=int(self.trade_price[ti]) if ti >= 0 else None,
            volume=volume,
            volume_24h=volume - volume_day_ago,
            open_interest=int(self.open_interest[ti]) if ti >= 0 else 0,
            previous_yes_bid=int(self.bid[pqi]) if pqi >= 0 else EMPTY_BID,
            previous_yes_ask=int(self.ask[pqi]) if pqi >= 0 else EMPTY_ASK,
            previous_price=int(self.trade_price[pti]) if pti >= 0 else None,
        )

    def book_at(self, t_ms: int, depth: int = 0) -> OrderBook:
        """The resting bids at `t_ms`: the best levels match `quote_at`, deeper levels are seeded per quote.

        `depth` > 0 keeps only the best `depth` levels of each side.
        """
        qi = self.quote_index_at(t_ms)
        if qi < 0 or (self.bid_size[qi] == 0 and self.ask_size[qi] == 0):
            return OrderBook((), ())
        rng = np.random.default_rng([*self._seed_words, 7, qi])
        levels = int(rng.integers(6, 14))
        yes = self._ladder(int(self.bid[qi]), int(self.bid_size[qi]), levels, rng)
        no = self._ladder(PIPS - int(self.ask[qi]), int(self.ask_size[qi]), levels, rng)
        if depth > 0:
            yes, no = yes[-depth:], no[-depth:]
        return OrderBook(tuple(yes), tuple(no))

    @staticmethod
    def _ladder(
        best: int, best_size: int, levels: int, rng: np.random.Generator
    ) -> list[tuple[int, int]]:
        if best <= 0 or best_size <= 0:
            return []
        out = [(best, best_size)]
        price = best
        sizes = _sizes(rng, levels, 500.0, 1.0)
        for size in sizes:
            price -= tick_size(price - 1) * int(rng.integers(1, 3))
            if price < MIN_BID:
                break
            out.append((price, int(size)))
        out.reverse()
        return out

    # -- candles --------------------------------------------------------------------------------------
    def candles(self, period_minutes: int, start_s: int, end_s: int, now_ms: int) -> CandleArrays:
        """Candles for periods ending in `[start_s, end_s]` with any quote or trade activity up to `now_ms`.

        A candle covers `(end - period, end]`; the still-open current period only holds events up to now.
        """
        period_ms = period_minutes * 60_000
        lo_ms = max((start_s - period_minutes * 60) * 1000, -1)
        hi_ms = min(end_s * 1000, now_ms)
        q_sel = self.quote_t[
            np.searchsorted(self.quote_t, lo_ms, "right") : np.searchsorted(
                self.quote_t, hi_ms, "right"
            )
        ]
        t_sel = self.trade_t[
            np.searchsorted(self.trade_t, lo_ms, "right") : np.searchsorted(
                self.trade_t, hi_ms, "right"
            )
        ]
        ends_ms = _sorted_unique(
            np.concatenate(
                [(q_sel + period_ms - 1) // period_ms, (t_sel + period_ms - 1) // period_ms]
            )
            * period_ms
        )
        ends_ms = ends_ms[(ends_ms >= start_s * 1000) & (ends_ms <= end_s * 1000)]
        starts_ms = ends_ms - period_ms
        cut_ms = np.minimum(ends_ms, now_ms)

        q_open = np.searchsorted(self.quote_t, starts_ms, "right") - 1
        q_lo = q_open + 1
        q_hi = np.searchsorted(self.quote_t, cut_ms, "right")
        first_q = np.where(q_open >= 0, q_open, q_lo)
        bid_open, ask_open = self.bid[first_q], self.ask[first_q]
        bid_close, ask_close = self.bid[q_hi - 1], self.ask[q_hi - 1]
        bid_high = _segment_reduce(np.maximum, self.bid, q_lo, q_hi, bid_open)
        bid_low = _segment_reduce(np.minimum, self.bid, q_lo, q_hi, bid_open)
        ask_high = _segment_reduce(np.maximum, self.ask, q_lo, q_hi, ask_open)
        ask_low = _segment_reduce(np.minimum, self.ask, q_lo, q_hi, ask_open)

        t_lo = np.searchsorted(self.trade_t, starts_ms, "right")
        t_hi = np.searchsorted(self.trade_t, cut_ms, "right")
        has_trade = t_hi > t_lo
        none = np.full(len(ends_ms), -1, dtype=np.int64)
        safe_lo = np.minimum(t_lo, max(len(self.trade_t) - 1, 0))
        safe_last = np.maximum(t_hi - 1, 0)
        if len(self.trade_t):
            price_open = np.where(has_trade, self.trade_price[safe_lo], none)
            price_close = np.where(has_trade, self.trade_price[safe_last], none)
            vol_before = np.where(t_lo > 0, self.cum_volume[np.maximum(t_lo - 1, 0)], 0)
            vol_after = np.where(t_hi > 0, self.cum_volume[safe_last], 0)
            notional_before = np.where(t_lo > 0, self.cum_notional[np.maximum(t_lo - 1, 0)], 0)
            notional_after = np.where(t_hi > 0, self.cum_notional[safe_last], 0)
            volume = vol_after - vol_before
            notional = notional_after - notional_before
            mean = np.where(
                has_trade,
                (2 * notional + np.maximum(volume, 1)) // (2 * np.maximum(volume, 1)),
                none,
            )
            previous = np.where(t_lo > 0, self.trade_price[np.maximum(t_lo - 1, 0)], none)
            oi = np.where(t_hi > 0, self.open_interest[safe_last], 0)
            price_high = _segment_reduce(np.maximum, self.trade_price, t_lo, t_hi, none)
            price_low = _segment_reduce(np.minimum, self.trade_price, t_lo, t_hi, none)
        else:
            price_open = price_close = mean = previous = price_high = price_low = none
            volume = oi = np.zeros(len(ends_ms), dtype=np.int64)
        return CandleArrays(
            end_ts=ends_ms // 1000,
            bid_open=bid_open,
            bid_high=bid_high,
            bid_low=bid_low,
            bid_close=bid_close,
            ask_open=ask_open,
            ask_high=ask_high,
            ask_low=ask_low,
            ask_close=ask_close,
            has_trade=has_trade,
            price_open=price_open,
            price_high=price_high,
            price_low=price_low,
            price_close=price_close,
            price_mean=mean,
            price_previous=previous,
            volume=volume,
            open_interest=oi,
        )

    def carry_candle(self, period_minutes: int, end_s: int) -> CandleArrays:
        """A synthetic candle ending at `end_s` that carries the state of the period's start forward.

        It has no trades (volume 0, `previous` = last trade before), and flat quotes; it is what
        `include_latest_before_start` prepends.
        """
        start_ms = (end_s - period_minutes * 60) * 1000
        qi = self.quote_index_at(start_ms)
        ti = self.trade_index_at(start_ms)
        bid = np.array([self.bid[qi] if qi >= 0 else EMPTY_BID], dtype=np.int64)
        ask = np.array([self.ask[qi] if qi >= 0 else EMPTY_ASK], dtype=np.int64)
        none = np.array([-1], dtype=np.int64)
        previous = np.array([self.trade_price[ti] if ti >= 0 else -1], dtype=np.int64)
        oi = np.array([self.open_interest[ti] if ti >= 0 else 0], dtype=np.int64)
        return CandleArrays(
            end_ts=np.array([end_s], dtype=np.int64),
            bid_open=bid,
            bid_high=bid,
            bid_low=bid,
            bid_close=bid,
            ask_open=ask,
            ask_high=ask,
            ask_low=ask,
            ask_close=ask,
            has_trade=np.array([False]),
            price_open=none,
            price_high=none,
            price_low=none,
            price_close=none,
            price_mean=none,
            price_previous=previous,
            volume=np.zeros(1, dtype=np.int64),
            open_interest=oi,
        )

    def last_activity_before(self, t_ms: int) -> int | None:
        """Time (ms) of the last quote or trade at or before `t_ms`, or None."""
        qi = self.quote_index_at(t_ms)
        ti = self.trade_index_at(t_ms)
        times = [int(self.quote_t[qi])] if qi >= 0 else []
        if ti >= 0:
            times.append(int(self.trade_t[ti]))
        return max(times) if times else None


def _segment_reduce(
    ufunc: np.ufunc, values: np.ndarray, lo: np.ndarray, hi: np.ndarray, base: np.ndarray
) -> np.ndarray:
    """Combine `base` with `ufunc.reduce(values[lo:hi])` per segment (segments are contiguous and ordered)."""
    out = base.copy()
    nonempty = hi > lo
    if not nonempty.any():
        return out
    starts = lo[nonempty]
    stop = int(hi[nonempty][-1])
    reduced = ufunc.reduceat(values[:stop], starts)
    # reduceat runs each segment up to the next start; segments are contiguous, so that is `hi`.
    merged = np.where(base[nonempty] >= 0, ufunc(base[nonempty], reduced), reduced)
    out[nonempty] = merged
    return out


class GamePath:
    """The two markets of one game, generated together so their prices stay complementary."""

    def __init__(self, game: Game, seed: int) -> None:
        self.game = game
        words = _seed_words(seed, game.event_ticker)
        rng = np.random.default_rng(words)
        tip_ms, end_ms = game.tip_s * 1000, game.end_s * 1000
        close_ms = game.close_s * 1000
        first = first_quote_ms(game, seed)
        segments = _segments(game, first)

        # Quote times per market: sparse long before tip-off, seconds apart in-game.
        quote_times: list[np.ndarray] = []
        for _side in range(2):
            qs = [np.array([first], dtype=np.int64)]
            for start, stop, q_gap, _t_gap in segments:
                qs.append(_poisson_times(rng, start, stop, q_gap))
            qs.append(np.array([end_ms], dtype=np.int64))
            quote_times.append(_sorted_unique(np.concatenate(qs)))

        # Fair home win probability on the union of both markets' quote times.
        grid = _sorted_unique(np.concatenate(quote_times))
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
        s = np.clip((grid[live] - tip_ms) / max(end_ms - tip_ms, 1), 0.0, 1.0)
        if len(s):
            ds = np.diff(np.concatenate([[0.0], s]))
            w = np.cumsum(rng.normal(0.0, 1.0, len(s)) * sigma * np.sqrt(ds))
            w_end = w[-1] + rng.normal(0.0, sigma * math.sqrt(max(1.0 - s[-1], 0.0)))
            margin = w - s * w_end + s * game.final_margin
            remaining = np.maximum(1.0 - s, 1e-9)
            p = normal_cdf((margin + mu * remaining) / (sigma * np.sqrt(remaining)))
            p = np.where(s >= 1.0, 1.0 if game.home_wins else 0.0, p)
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
        bid_size = _sizes(rng, n, 250.0, 1.0)
        ask_size = _sizes(rng, n, 250.0, 1.0)

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
            _seed_words(*words, ticker),
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


def first_quote_ms(game: Game, seed: int) -> int:
    """When a game's markets post their first quotes: a few seconds after they open."""
    return game.open_s * 1000 + 1_000 + _seed_words(seed, game.event_ticker, "first")[0] % 19_000


def _segments(game: Game, first_ms: int) -> list[tuple[int, int, float, float]]:
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


def quote_prices(f: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best bid and ask (pips, on the tick grid) around fair values `f` with half-spreads `half`."""
    bid = np.clip(tick_below(f - half), MIN_BID, MAX_BID)
    ask = np.clip(tick_above(f + half), MIN_ASK, MAX_ASK)
    step = np.where((bid < 1000) | (bid >= 9000), 10, 100)
    ask = np.clip(np.maximum(ask, bid + step), MIN_ASK, MAX_ASK)
    bid = np.minimum(bid, ask - 10)
    return bid, ask


@dataclass(frozen=True, slots=True)
class TradeFlow:
    """The trades of one market apart from their prices, drawn from a stream of their own.

    The flow does not depend on the quote path, so a finished market's totals (volume, open
    interest, closing print) can be computed without generating quotes. Every market ends with a
    closing print at the final buzzer, against the last quote, whose fair value is the result.
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
        rng = np.random.default_rng(_seed_words(seed, game.event_ticker, ticker, "flow"))
        spans = [max(stop - start, 0) for start, stop, _, _ in segments]
        lams = [span / gap for span, (_, _, _, gap) in zip(spans, segments, strict=True)]
        drawn = rng.poisson(lams)
        counts = tuple(int(min(k, span)) for k, span in zip(drawn, spans, strict=True))
        m = sum(counts) + 1  # plus the closing print
        count = _sizes(rng, m, 12.0, 1.2)
        uniform = rng.random(2 * m)
        taker_yes = uniform[:m] < 0.5
        direction = np.where(uniform[m:] < 0.56, 1, -1)
        closing_half = int((30, 50, 100)[int(rng.integers(0, 3))])
        times = np.empty(0, dtype=np.int64)
        if with_times:
            parts = [
                _unique_times(rng, start, stop, k)
                for (start, stop, _, _), k in zip(segments, counts, strict=True)
            ]
            parts.append(np.array([game.end_s * 1000], dtype=np.int64))
            times = np.concatenate(parts)
        return TradeFlow(counts, count, taker_yes, direction, closing_half, times)

    def open_interest(self) -> np.ndarray:
        """Open interest after each trade (hundredths): a walk of opening and closing trades, >= 0."""
        walk = np.cumsum(self.direction * self.count)
        return (walk - np.minimum(0, np.minimum.accumulate(walk))).astype(np.int64)


def _unique_times(rng: np.random.Generator, start: int, stop: int, k: int) -> np.ndarray:
    """`k` distinct sorted integer times in `[start, stop)` (k <= stop - start)."""
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(rng.integers(start, stop - k + 1, size=k, dtype=np.int64)) + np.arange(
        k, dtype=np.int64
    )


@dataclass(frozen=True, slots=True)
class MarketSummary:
    """A finished market's final numbers: last trade price, total volume, final open interest."""

    last_price: int
    volume: int
    open_interest: int


def market_summary(game: Game, ticker: str, seed: int) -> MarketSummary:
    """The final numbers of a market, equal to its full path's but without generating the path."""
    flow = TradeFlow.draw(game, ticker, seed, _segments(game, first_quote_ms(game, seed)), False)
    bid, ask = _closing_quote(game.yes_wins(ticker), flow.closing_half)
    last = ask if bool(flow.taker_yes[-1]) else bid
    walk = np.cumsum(flow.direction * flow.count)
    final_oi = int(walk[-1] - min(0, int(walk.min())))
    return MarketSummary(last, int(flow.count.sum()), final_oi)


@functools.cache
def _closing_quote(yes_wins: bool, half: int) -> tuple[int, int]:
    """The quote at the final buzzer (fair value 1 or 0) for a half-spread: (bid, ask) in pips."""
    bid, ask = quote_prices(np.array([float(PIPS if yes_wins else 0)]), np.array([float(half)]))
    return int(bid[0]), int(ask[0])
