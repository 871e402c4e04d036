"""Candlesticks of one market, column-wise, computed from its `MarketPath` for any period and window."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_pipeline.simulator.market_model.draws import sorted_unique
from kalshi_pipeline.simulator.market_model.path import MarketPath
from kalshi_pipeline.simulator.market_model.prices import EMPTY_ASK, EMPTY_BID


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


def candles(
    path: MarketPath, period_minutes: int, start_s: int, end_s: int, now_ms: int
) -> CandleArrays:
    """A market's candles for periods ending in `[start_s, end_s]` with any activity up to `now_ms`.

    A candle covers `(end - period, end]`; the still-open current period only holds events up to now.
    """
    period_ms = period_minutes * 60_000
    lo_ms = max((start_s - period_minutes * 60) * 1000, -1)
    hi_ms = min(end_s * 1000, now_ms)
    q_sel = path.quote_t[
        np.searchsorted(path.quote_t, lo_ms, "right") : np.searchsorted(
            path.quote_t, hi_ms, "right"
        )
    ]
    t_sel = path.trade_t[
        np.searchsorted(path.trade_t, lo_ms, "right") : np.searchsorted(
            path.trade_t, hi_ms, "right"
        )
    ]
    ends_ms = sorted_unique(
        np.concatenate([(q_sel + period_ms - 1) // period_ms, (t_sel + period_ms - 1) // period_ms])
        * period_ms
    )
    ends_ms = ends_ms[(ends_ms >= start_s * 1000) & (ends_ms <= end_s * 1000)]
    starts_ms = ends_ms - period_ms
    cut_ms = np.minimum(ends_ms, now_ms)

    q_open = np.searchsorted(path.quote_t, starts_ms, "right") - 1
    q_lo = q_open + 1
    q_hi = np.searchsorted(path.quote_t, cut_ms, "right")
    first_q = np.where(q_open >= 0, q_open, q_lo)
    bid_open, ask_open = path.bid[first_q], path.ask[first_q]
    bid_close, ask_close = path.bid[q_hi - 1], path.ask[q_hi - 1]
    bid_high = _segment_reduce(np.maximum, path.bid, q_lo, q_hi, bid_open)
    bid_low = _segment_reduce(np.minimum, path.bid, q_lo, q_hi, bid_open)
    ask_high = _segment_reduce(np.maximum, path.ask, q_lo, q_hi, ask_open)
    ask_low = _segment_reduce(np.minimum, path.ask, q_lo, q_hi, ask_open)

    t_lo = np.searchsorted(path.trade_t, starts_ms, "right")
    t_hi = np.searchsorted(path.trade_t, cut_ms, "right")
    has_trade = t_hi > t_lo
    none = np.full(len(ends_ms), -1, dtype=np.int64)
    safe_lo = np.minimum(t_lo, max(len(path.trade_t) - 1, 0))
    safe_last = np.maximum(t_hi - 1, 0)
    if len(path.trade_t):
        price_open = np.where(has_trade, path.trade_price[safe_lo], none)
        price_close = np.where(has_trade, path.trade_price[safe_last], none)
        vol_before = np.where(t_lo > 0, path.cum_volume[np.maximum(t_lo - 1, 0)], 0)
        vol_after = np.where(t_hi > 0, path.cum_volume[safe_last], 0)
        notional_before = np.where(t_lo > 0, path.cum_notional[np.maximum(t_lo - 1, 0)], 0)
        notional_after = np.where(t_hi > 0, path.cum_notional[safe_last], 0)
        volume = vol_after - vol_before
        notional = notional_after - notional_before
        mean = np.where(
            has_trade,
            (2 * notional + np.maximum(volume, 1)) // (2 * np.maximum(volume, 1)),
            none,
        )
        previous = np.where(t_lo > 0, path.trade_price[np.maximum(t_lo - 1, 0)], none)
        oi = np.where(t_hi > 0, path.open_interest[safe_last], 0)
        price_high = _segment_reduce(np.maximum, path.trade_price, t_lo, t_hi, none)
        price_low = _segment_reduce(np.minimum, path.trade_price, t_lo, t_hi, none)
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


def carry_candle(path: MarketPath, period_minutes: int, end_s: int) -> CandleArrays:
    """A synthetic candle ending at `end_s` that carries the state of the period's start forward.

    It has no trades (volume 0, `previous` = last trade before), and flat quotes; it is what
    `include_latest_before_start` prepends.
    """
    start_ms = (end_s - period_minutes * 60) * 1000
    qi = path.quote_index_at(start_ms)
    ti = path.trade_index_at(start_ms)
    bid = np.array([path.bid[qi] if qi >= 0 else EMPTY_BID], dtype=np.int64)
    ask = np.array([path.ask[qi] if qi >= 0 else EMPTY_ASK], dtype=np.int64)
    none = np.array([-1], dtype=np.int64)
    previous = np.array([path.trade_price[ti] if ti >= 0 else -1], dtype=np.int64)
    oi = np.array([path.open_interest[ti] if ti >= 0 else 0], dtype=np.int64)
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


def concat(first: CandleArrays, second: CandleArrays) -> CandleArrays:
    """The candles of `first` followed by those of `second`."""
    return CandleArrays(
        **{
            name: np.concatenate([getattr(first, name), getattr(second, name)])
            for name in CandleArrays.__dataclass_fields__
        }
    )


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
