"""One market's generated history (`MarketPath`) and what it answers: events, state and book at an instant.

Units are integers: prices in pips of 0.0001 dollars (0..10000), counts in hundredths of a contract, times
in Unix ms. A `MarketPath` is built by `kalshi_pipeline.simulator.market_model.game_path.GamePath`.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import numpy as np

from kalshi_pipeline.simulator.market_model.draws import sizes
from kalshi_pipeline.simulator.market_model.prices import (
    EMPTY_ASK,
    EMPTY_BID,
    MIN_BID,
    PIPS,
    tick_size,
)


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
class BookLadder:
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


class MarketPath:
    """All quote changes and trades of one market, with the state and book they imply at any instant."""

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

    def book_at(self, t_ms: int, depth: int = 0) -> BookLadder:
        """The resting bids at `t_ms`: the best levels match `quote_at`, deeper levels are seeded per quote.

        `depth` > 0 keeps only the best `depth` levels of each side.
        """
        qi = self.quote_index_at(t_ms)
        if qi < 0 or (self.bid_size[qi] == 0 and self.ask_size[qi] == 0):
            return BookLadder((), ())
        rng = np.random.default_rng([*self._seed_words, 7, qi])
        levels = int(rng.integers(6, 14))
        yes = self._ladder(int(self.bid[qi]), int(self.bid_size[qi]), levels, rng)
        no = self._ladder(PIPS - int(self.ask[qi]), int(self.ask_size[qi]), levels, rng)
        if depth > 0:
            yes, no = yes[-depth:], no[-depth:]
        return BookLadder(tuple(yes), tuple(no))

    @staticmethod
    def _ladder(
        best: int, best_size: int, levels: int, rng: np.random.Generator
    ) -> list[tuple[int, int]]:
        if best <= 0 or best_size <= 0:
            return []
        out = [(best, best_size)]
        price = best
        for size in sizes(rng, levels, 500.0, 1.0):
            price -= tick_size(price - 1) * int(rng.integers(1, 3))
            if price < MIN_BID:
                break
            out.append((price, int(size)))
        out.reverse()
        return out

    def last_activity_before(self, t_ms: int) -> int | None:
        """Time (ms) of the last quote or trade at or before `t_ms`, or None."""
        qi = self.quote_index_at(t_ms)
        ti = self.trade_index_at(t_ms)
        times = [int(self.quote_t[qi])] if qi >= 0 else []
        if ti >= 0:
            times.append(int(self.trade_t[ti]))
        return max(times) if times else None
