"""Request windows for Kalshi's candlestick endpoints, which cap the candles one request may return.

A window `[start_ts, end_ts]` (Unix seconds, inclusive) is split so that each request stays under the caps
(`SINGLE_MAX_CANDLES` per market; `BATCH_MAX_TICKERS` markets and `BATCH_MAX_CANDLES` candles per batch), and
the candles of all requests merge back without duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kalshi_pipeline.kalshi.candles import Candlestick

__all__ = [
    "BATCH_MAX_CANDLES",
    "BATCH_MAX_TICKERS",
    "PERIOD_INTERVALS",
    "SINGLE_MAX_CANDLES",
    "batch_plan",
    "candle_windows",
    "check_unix_seconds",
    "sorted_unique",
]

#: Candle periods Kalshi serves, in minutes.
PERIOD_INTERVALS = (1, 60, 1440)
#: Candles one single-market (or event) request returns at most.
SINGLE_MAX_CANDLES = 5000
#: Markets one `GET /markets/candlesticks` request may name.
BATCH_MAX_TICKERS = 100
#: Candles (markets x periods) one `GET /markets/candlesticks` request returns at most.
BATCH_MAX_CANDLES = 10_000


def candle_windows(
    start_ts: int, end_ts: int, period_interval: int, max_periods: int
) -> list[tuple[int, int]]:
    """Split the inclusive window `[start_ts, end_ts]` into contiguous sub-windows of <= `max_periods` periods.

    Sub-windows neither overlap nor leave gaps, so each candle end falls in exactly one of them, and each
    spans at most `(max_periods - 1)` periods, so it holds at most `max_periods` period ends whatever the
    alignment of the candles.
    """
    if period_interval not in PERIOD_INTERVALS:
        raise ValueError(
            f"period_interval must be one of {PERIOD_INTERVALS} minutes, got {period_interval!r}"
        )
    if max_periods < 1:
        raise ValueError(f"max_periods must be >= 1, got {max_periods}")
    if end_ts < start_ts:
        raise ValueError(f"end_ts {end_ts} is before start_ts {start_ts}")
    span = (max_periods - 1) * period_interval * 60
    windows = []
    lo = start_ts
    while lo <= end_ts:
        hi = min(lo + span, end_ts)
        windows.append((lo, hi))
        lo = hi + 1
    return windows


def _periods_bound(start_ts: int, end_ts: int, period_interval: int) -> int:
    """An upper bound of the period count of `[start_ts, end_ts]` under any counting convention."""
    return -(-(end_ts - start_ts) // (period_interval * 60)) + 1


def check_unix_seconds(name: str, value: int) -> int:
    """Return `value` when it is Unix seconds; refuse other types and millisecond-looking values."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be Unix seconds (int), got {value!r}")
    if value > 10_000_000_000:
        raise ValueError(f"{name}={value} looks like milliseconds; pass Unix seconds")
    return value


def sorted_unique(candles: Iterable[Candlestick]) -> list[Candlestick]:
    """Candles ascending by end time, one per end time (the last one given wins)."""
    by_end: dict[int, Candlestick] = {}
    for candle in candles:
        by_end[candle.end_period_ts] = candle
    return [by_end[k] for k in sorted(by_end)]


def batch_plan(
    tickers: Sequence[str], start_ts: int, end_ts: int, period_interval: int
) -> tuple[list[list[str]], list[tuple[int, int]]]:
    """Split a batch request into ticker groups and windows, every (group, window) pair under the caps.

    Windows stay <= `SINGLE_MAX_CANDLES` periods; groups hold <= `BATCH_MAX_TICKERS` tickers and
    tickers x periods <= `BATCH_MAX_CANDLES`.
    """
    total_periods = _periods_bound(start_ts, end_ts, period_interval) if end_ts >= start_ts else 1
    window_periods = min(total_periods, SINGLE_MAX_CANDLES)
    group = max(1, min(BATCH_MAX_TICKERS, BATCH_MAX_CANDLES // window_periods))
    windows = candle_windows(start_ts, end_ts, period_interval, window_periods)
    groups = [list(tickers[i : i + group]) for i in range(0, len(tickers), group)]
    return groups, windows
