"""Validation of parsed candlesticks before they reach `kalshi.candlesticks` (plain pandera).

`validate_candles(df, allowed_tickers)` splits a frame of parsed candles into the rows that pass every
rule and the rows that fail, the latter with a `reasons` column naming each failed rule (`; `-joined).
Prices and counts are `Decimal` (or None) in object columns, exactly as the warehouse stores them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import pandas as pd
import pandera.pandas as pa

OHLC_GROUPS = ("price", "yes_bid", "yes_ask")
PRICE_COLUMNS = [
    "price_open",
    "price_high",
    "price_low",
    "price_close",
    "price_mean",
    "price_previous",
    "yes_bid_open",
    "yes_bid_high",
    "yes_bid_low",
    "yes_bid_close",
    "yes_ask_open",
    "yes_ask_high",
    "yes_ask_low",
    "yes_ask_close",
]
COUNT_COLUMNS = ["volume", "open_interest"]
KEY_COLUMNS = ["ticker", "period_interval", "end_period_ts"]
CANDLE_COLUMNS = [
    "ticker",
    "event_ticker",
    "series_ticker",
    "game_date",
    "period_interval",
    "end_period_ts",
    *PRICE_COLUMNS,
    *COUNT_COLUMNS,
    "source",
    "ingested_at",
]
VALID_PERIODS = (1, 60, 1440)
ZERO, ONE = Decimal(0), Decimal(1)


def _le(a: Any, b: Any) -> bool:
    """Return a <= b, treating a missing side as 'nothing to compare' (True)."""
    return a is None or b is None or a <= b


def _rowwise(columns: list[str], rule: Callable[..., bool]) -> Callable[[pd.DataFrame], pd.Series]:
    """Turn a per-row predicate over some columns into a pandera wide check returning a bool Series."""

    def check(df: pd.DataFrame) -> pd.Series:
        values = zip(*(df[c].tolist() for c in columns), strict=True)
        return pd.Series([bool(rule(*row)) for row in values], index=df.index, dtype=bool)

    return check


def _in_unit_interval(*values: Any) -> bool:
    return all(v is None or (isinstance(v, Decimal) and ZERO <= v <= ONE) for v in values)


def _ohlc_consistent(o: Any, h: Any, lo: Any, c: Any) -> bool:
    return _le(lo, o) and _le(o, h) and _le(lo, c) and _le(c, h) and _le(lo, h)


def _non_negative_count(v: Any) -> bool:
    return isinstance(v, Decimal) and v.is_finite() and v >= ZERO


def _is_decimal_or_none(*values: Any) -> bool:
    return all(v is None or (isinstance(v, Decimal) and v.is_finite()) for v in values)


def _aligned(ts: Any, interval: Any) -> bool:
    return int(interval) in VALID_PERIODS and int(ts) % (int(interval) * 60) == 0


def _checks(allowed: frozenset[str]) -> list[pa.Check]:
    checks = [
        pa.Check(_rowwise(PRICE_COLUMNS, _is_decimal_or_none), name="price not a finite decimal"),
        pa.Check(_rowwise(PRICE_COLUMNS, _in_unit_interval), name="price outside [0, 1]"),
    ]
    for group in OHLC_GROUPS:
        cols = [f"{group}_open", f"{group}_high", f"{group}_low", f"{group}_close"]
        checks.append(
            pa.Check(_rowwise(cols, _ohlc_consistent), name=f"{group} low <= open, close <= high")
        )
    checks += [
        # Highs/lows of the two sides may come from different instants of the minute, so only the
        # open and close snapshots of the book are comparable.
        pa.Check(
            _rowwise(["yes_bid_open", "yes_ask_open"], _le), name="yes_bid_open > yes_ask_open"
        ),
        pa.Check(
            _rowwise(["yes_bid_close", "yes_ask_close"], _le), name="yes_bid_close > yes_ask_close"
        ),
        pa.Check(_rowwise(["volume"], _non_negative_count), name="volume missing or negative"),
        pa.Check(
            _rowwise(["open_interest"], _non_negative_count),
            name="open_interest missing or negative",
        ),
        pa.Check(
            _rowwise(["end_period_ts", "period_interval"], _aligned),
            name="end_period_ts not aligned to period_interval",
        ),
        pa.Check(
            _rowwise(["ticker"], lambda t: t in allowed), name="ticker not in partition's games"
        ),
    ]
    return checks


def candle_schema(allowed_tickers: Iterable[str]) -> pa.DataFrameSchema:
    """Return the pandera schema a clean candle frame satisfies for the given set of tickers."""
    allowed = frozenset(allowed_tickers)
    return pa.DataFrameSchema(
        columns={
            "ticker": pa.Column(nullable=False),
            "period_interval": pa.Column("int64", nullable=False),
            "end_period_ts": pa.Column("int64", nullable=False),
            **{c: pa.Column(object, nullable=True) for c in PRICE_COLUMNS},
            **{c: pa.Column(object, nullable=True) for c in COUNT_COLUMNS},
        },
        checks=_checks(allowed),
        unique=KEY_COLUMNS,
        report_duplicates="exclude_first",
        strict=False,
        name="kalshi.candlesticks",
    )


def validate_candles(
    df: pd.DataFrame, allowed_tickers: Iterable[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split candles into (valid, rejected); rejected rows carry a `reasons` column.

    Rules: every price in [0, 1]; low <= open, close <= high for price, yes_bid and yes_ask OHLC where
    present; yes_bid <= yes_ask at open and at close where both sides exist; volume and open_interest
    present and >= 0; end_period_ts a multiple of period_interval minutes (interval 1, 60 or 1440);
    (ticker, period_interval, end_period_ts) unique (the first occurrence is kept); every ticker is one
    of `allowed_tickers`. Column or dtype problems fail every row with the schema error as the reason.
    """
    frame = df.reset_index(drop=True).copy()
    frame["period_interval"] = frame["period_interval"].astype("int64")
    frame["end_period_ts"] = frame["end_period_ts"].astype("int64")
    for col in (*PRICE_COLUMNS, *COUNT_COLUMNS):
        if col in frame.columns:
            frame[col] = pd.Series(
                [None if isinstance(v, float) and v != v else v for v in frame[col].tolist()],
                index=frame.index,
                dtype=object,
            )
    reasons: dict[int, list[str]] = {}
    if len(frame):
        try:
            candle_schema(allowed_tickers).validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            cases = exc.failure_cases
            for check, index in zip(cases["check"], cases["index"], strict=True):
                label = (
                    "duplicate (ticker, period_interval, end_period_ts)"
                    if (check == "multiple_fields_uniqueness")
                    else str(check)
                )
                rows = range(len(frame)) if index is None or pd.isna(index) else [int(index)]
                for row in rows:
                    bucket = reasons.setdefault(row, [])
                    if label not in bucket:
                        bucket.append(label)
    bad = sorted(reasons)
    valid = frame.drop(index=bad).reset_index(drop=True)
    rejected = frame.loc[bad].copy().reset_index(drop=True)
    rejected["reasons"] = ["; ".join(reasons[i]) for i in bad]
    return valid, rejected
