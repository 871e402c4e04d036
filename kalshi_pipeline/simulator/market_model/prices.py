"""The exchange's price grid: prices in pips (0.0001 dollars), Kalshi's `tapered_deci_cent` ticks, quotes."""

from __future__ import annotations

import numpy as np

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


def quote_prices(f: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best bid and ask (pips, on the tick grid) around fair values `f` with half-spreads `half`."""
    bid = np.clip(tick_below(f - half), MIN_BID, MAX_BID)
    ask = np.clip(tick_above(f + half), MIN_ASK, MAX_ASK)
    step = np.where((bid < 1000) | (bid >= 9000), 10, 100)
    ask = np.clip(np.maximum(ask, bid + step), MIN_ASK, MAX_ASK)
    bid = np.minimum(bid, ask - 10)
    return bid, ask
