"""Validation of parsed candlesticks before they reach `kalshi.candlesticks` (plain pandera).

`validate_candles(df, allowed_tickers)` splits a frame of parsed candles into the rows that pass every
rule and the rows that fail, the latter with a `reasons` column naming each failed rule (`; `-joined, in
the order of `RULES`). Prices and counts are `Decimal` (or None) in object columns, exactly as the
warehouse stores them.

The rules are defined row by row (`_in_unit_interval`, `_ohlc_consistent`, ...). The pandera checks
evaluate them on whole columns: each Decimal column is factorized once (its distinct values), the rule is
decided per distinct value in exact Decimal arithmetic (comparisons between columns go through the exact
rank of each distinct value), and rows get the answer of their value by integer indexing. That covers
every column holding only None and finite Decimals -- what the parser produces; a check over any other
column (floats, strings, pd.NA, non-finite decimals) applies its row rule to every row instead, so the
outcome is the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from kalshi_pipeline.warehouse.schema import (
    CANDLE_PRICE_COLUMNS,
    CANDLE_VALUE_COLUMNS,
    CANDLESTICKS,
    DECIMAL_SHAPES,
)

OHLC_GROUPS = ("price", "yes_bid", "yes_ask")
#: The columns of a frame of parsed candles (what `validate_candles` takes): the clean table's columns
#: without `ingested_at`, plus the raw `payload` each row was parsed from (kept for the rejects).
PARSED_COLUMNS = (*(c for c in CANDLESTICKS.column_names if c != "ingested_at"), "payload")
VALID_PERIODS = (1, 60, 1440)
_NONE = np.array(None, dtype=object)  # compared element-wise: which missing cells hold None itself
ZERO, ONE = Decimal(0), Decimal(1)


def _le(a: Any, b: Any) -> bool:
    """Return a <= b, treating a missing side as 'nothing to compare' (True)."""
    return a is None or b is None or a <= b


def _in_unit_interval(*values: Any) -> bool:
    return all(v is None or (isinstance(v, Decimal) and ZERO <= v <= ONE) for v in values)


def _ohlc_consistent(o: Any, h: Any, lo: Any, c: Any) -> bool:
    return _le(lo, o) and _le(o, h) and _le(lo, c) and _le(c, h) and _le(lo, h)


def _non_negative_count(v: Any) -> bool:
    return isinstance(v, Decimal) and v.is_finite() and v >= ZERO


def _is_decimal_or_none(*values: Any) -> bool:
    return all(v is None or (isinstance(v, Decimal) and v.is_finite()) for v in values)


def _storable_below(limit: Decimal, scale: int) -> Callable[[Any], bool]:
    """Whether a finite value fits its warehouse column exactly: below `limit` in magnitude, with at most
    `scale` decimals (trailing zeros beyond them are fine). Anything else is other rules' business."""
    step = Decimal(1).scaleb(-scale)

    def storable(v: Any) -> bool:
        if not isinstance(v, Decimal) or not v.is_finite():
            return True
        return abs(v) < limit and v == v.quantize(step)

    return storable


#: Each value column's exactness rule: the magnitude its DECIMAL(precision, scale) column holds.
_STORABLE = {
    c: _storable_below(Decimal(10) ** (precision - scale), scale)
    for c in CANDLE_VALUE_COLUMNS
    for precision, scale in [DECIMAL_SHAPES["price" if c in CANDLE_PRICE_COLUMNS else "count"]]
}


def _storable_check(df: pd.DataFrame) -> pd.Series:
    ok = np.ones(len(df), dtype=bool)
    for column, storable in _STORABLE.items():
        if column in df.columns:
            ok &= np.fromiter(map(storable, df[column].tolist()), dtype=bool, count=len(df))
    return pd.Series(ok, index=df.index, dtype=bool)


def _storable_values(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with every value their column cannot hold exactly replaced by None (for the rejects:
    the reason names the rule and the payload keeps the value as received)."""
    out = df.copy()
    for column, storable in _STORABLE.items():
        if column in out.columns:
            out[column] = pd.Series(
                [v if storable(v) else None for v in out[column].tolist()],
                index=out.index,
                dtype=object,
            )
    return out


def _aligned(ts: Any, interval: Any) -> bool:
    return int(interval) in VALID_PERIODS and int(ts) % (int(interval) * 60) == 0


@dataclass(frozen=True)
class _DecimalColumn:
    """A column holding only None and finite Decimals, factorized.

    `codes[i]` indexes `uniques` (distinct values, equal Decimals merged), -1 where the row holds None.
    """

    codes: np.ndarray
    uniques: list[Decimal]

    @property
    def none(self) -> np.ndarray:
        """Rows holding None."""
        return self.codes < 0

    def per_row(self, per_unique: Sequence[Any], for_none: Any, dtype: Any = bool) -> np.ndarray:
        """Spread one value per distinct Decimal to the rows (`for_none` where the row holds None)."""
        # Code -1 (None) picks the last element, which is `for_none`.
        return np.asarray([*per_unique, for_none], dtype=dtype)[self.codes]


def _decimal_column(series: pd.Series) -> _DecimalColumn | None:
    """Factorize a column of None / finite Decimals; None when it holds anything else."""
    if series.dtype != object:
        return None
    values = series.to_numpy()
    # Factorizing merges equal values, and Decimal(1) == 1 == True == 1.0, so the type scan comes first.
    if pd.api.types.infer_dtype(values, skipna=True) not in ("decimal", "empty"):
        return None
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    missing = codes < 0
    # Missing must mean None, not NaN / pd.NA / NaT / Decimal('NaN').
    if missing.any() and not np.equal(values[missing], _NONE).all():
        return None
    distinct = list(uniques)
    if not all(isinstance(d, Decimal) and d.is_finite() for d in distinct):
        return None
    return _DecimalColumn(codes.astype(np.int64, copy=False), distinct)


def _ranks(columns: Sequence[_DecimalColumn]) -> list[np.ndarray]:
    """Exact order of the columns' values as integers: equal Decimals share a rank, None is -1."""
    ordered = sorted({d for col in columns for d in col.uniques})
    rank = {d: i for i, d in enumerate(ordered)}
    return [col.per_row([rank[d] for d in col.uniques], -1, np.int64) for col in columns]


def _le_ranked(a: _DecimalColumn, ra: np.ndarray, b: _DecimalColumn, rb: np.ndarray) -> np.ndarray:
    return a.none | b.none | (ra <= rb)


def _vec_finite(columns: Sequence[_DecimalColumn]) -> np.ndarray:
    # Factorizing already proved every value None or a finite Decimal.
    return np.ones(len(columns[0].codes), dtype=bool)


def _vec_unit_interval(columns: Sequence[_DecimalColumn]) -> np.ndarray:
    ok = np.ones(len(columns[0].codes), dtype=bool)
    for col in columns:
        ok &= col.per_row([ZERO <= d <= ONE for d in col.uniques], True)
    return ok


def _vec_ohlc(columns: Sequence[_DecimalColumn]) -> np.ndarray:
    o, h, lo, c = columns
    ro, rh, rlo, rc = _ranks(columns)
    return (
        _le_ranked(lo, rlo, o, ro)
        & _le_ranked(o, ro, h, rh)
        & _le_ranked(lo, rlo, c, rc)
        & _le_ranked(c, rc, h, rh)
        & _le_ranked(lo, rlo, h, rh)
    )


def _vec_le(columns: Sequence[_DecimalColumn]) -> np.ndarray:
    a, b = columns
    ra, rb = _ranks(columns)
    return _le_ranked(a, ra, b, rb)


def _vec_non_negative(columns: Sequence[_DecimalColumn]) -> np.ndarray:
    (col,) = columns
    return col.per_row([d >= ZERO for d in col.uniques], False)


class _ColumnCache:
    """Factorized columns of the one frame being validated, shared by the checks of one validation."""

    def __init__(self) -> None:
        self._frame: pd.DataFrame | None = None
        self._columns: dict[str, _DecimalColumn | None] = {}

    def clear(self) -> None:
        """Forget the frame (pandera keeps the schema, and so this cache, as long as the frame lives)."""
        self._frame, self._columns = None, {}

    def get(self, df: pd.DataFrame, name: str) -> _DecimalColumn | None:
        if df is not self._frame:
            self._frame, self._columns = df, {}
        if name not in self._columns:
            self._columns[name] = _decimal_column(df[name])
        return self._columns[name]


def _rowwise(
    columns: Sequence[str], rule: Callable[..., bool]
) -> Callable[[pd.DataFrame], pd.Series]:
    """Turn a per-row predicate over some columns into a pandera wide check returning a bool Series."""

    def check(df: pd.DataFrame) -> pd.Series:
        values = zip(*(df[c].tolist() for c in columns), strict=True)
        return pd.Series([bool(rule(*row)) for row in values], index=df.index, dtype=bool)

    return check


def _decimal_rule(
    columns: Sequence[str],
    rule: Callable[..., bool],
    vectorized: Callable[[Sequence[_DecimalColumn]], np.ndarray],
    cache: _ColumnCache | None,
) -> Callable[[pd.DataFrame], pd.Series]:
    """A wide check evaluating `rule` on factorized Decimal columns, row by row for unusual columns."""
    rowwise = _rowwise(columns, rule)

    def check(df: pd.DataFrame) -> pd.Series:
        # The columnar path is only a faster evaluation: anything it does not handle (a signalling NaN
        # that refuses hashing, an unhashable cell, ...) is left to the rule itself.
        try:
            if cache is None:
                views = [_decimal_column(df[c]) for c in columns]
            else:
                views = [cache.get(df, c) for c in columns]
            present = [v for v in views if v is not None]
            if len(present) == len(views):
                return pd.Series(vectorized(present), index=df.index, dtype=bool)
        except Exception:
            pass
        return rowwise(df)

    return check


def _aligned_check(df: pd.DataFrame) -> pd.Series:
    ts, interval = df["end_period_ts"], df["period_interval"]
    if ts.dtype != np.int64 or interval.dtype != np.int64:
        return _rowwise(["end_period_ts", "period_interval"], _aligned)(df)
    ts_values = ts.to_numpy()
    periods = interval.to_numpy()
    valid = np.isin(periods, VALID_PERIODS)
    step = np.where(valid, periods, 1) * 60
    return pd.Series(valid & (ts_values % step == 0), index=df.index, dtype=bool)


def _known_ticker_check(allowed: frozenset[str]) -> Callable[[pd.DataFrame], pd.Series]:
    def check(df: pd.DataFrame) -> pd.Series:
        return pd.Series([t in allowed for t in df["ticker"].tolist()], index=df.index, dtype=bool)

    return check


DUPLICATE_REASON = "duplicate (ticker, period_interval, end_period_ts)"
STORABLE_REASON = "value not storable exactly (over 6 decimals or too large)"
#: Every rule's name (a rejected row's reason), in the order reasons are listed.
RULES = [
    "price not a finite decimal",
    "price outside [0, 1]",
    *(f"{group} low <= open, close <= high" for group in OHLC_GROUPS),
    "yes_bid_open > yes_ask_open",
    "yes_bid_close > yes_ask_close",
    "volume missing or negative",
    "open_interest missing or negative",
    "end_period_ts not aligned to period_interval",
    "ticker not in partition's games",
    STORABLE_REASON,
    DUPLICATE_REASON,
]


def _checks(allowed: frozenset[str], cache: _ColumnCache | None) -> list[pa.Check]:
    def rule(columns: Sequence[str], row_rule: Callable[..., bool], vectorized: Any) -> Any:
        return _decimal_rule(columns, row_rule, vectorized, cache)

    pairs: list[tuple[Callable[[pd.DataFrame], pd.Series], str]] = [
        (rule(CANDLE_PRICE_COLUMNS, _is_decimal_or_none, _vec_finite), RULES[0]),
        (rule(CANDLE_PRICE_COLUMNS, _in_unit_interval, _vec_unit_interval), RULES[1]),
    ]
    for group in OHLC_GROUPS:
        cols = [f"{group}_open", f"{group}_high", f"{group}_low", f"{group}_close"]
        pairs.append(
            (rule(cols, _ohlc_consistent, _vec_ohlc), f"{group} low <= open, close <= high")
        )
    pairs += [
        # Highs/lows of the two sides may come from different instants of the minute, so only the
        # open and close snapshots of the book are comparable.
        (rule(["yes_bid_open", "yes_ask_open"], _le, _vec_le), "yes_bid_open > yes_ask_open"),
        (rule(["yes_bid_close", "yes_ask_close"], _le, _vec_le), "yes_bid_close > yes_ask_close"),
        (rule(["volume"], _non_negative_count, _vec_non_negative), "volume missing or negative"),
        (
            rule(["open_interest"], _non_negative_count, _vec_non_negative),
            "open_interest missing or negative",
        ),
        (_aligned_check, "end_period_ts not aligned to period_interval"),
        (_known_ticker_check(allowed), "ticker not in partition's games"),
        (_storable_check, STORABLE_REASON),
    ]
    # ignore_na=False: pandera would otherwise pass rows whose every column is null -- impossible here,
    # period_interval is a non-null int64 -- at the price of a null scan of the whole frame per check.
    return [pa.Check(fn, name=name, ignore_na=False) for fn, name in pairs]


def _schema(allowed_tickers: Iterable[str], cache: _ColumnCache | None) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        columns={
            "ticker": pa.Column(nullable=False),
            "period_interval": pa.Column("int64", nullable=False),
            "end_period_ts": pa.Column("int64", nullable=False),
            **{c: pa.Column(object, nullable=True) for c in CANDLE_VALUE_COLUMNS},
        },
        checks=_checks(frozenset(allowed_tickers), cache),
        unique=list(CANDLESTICKS.primary_key),
        report_duplicates="exclude_first",
        strict=False,
        name="kalshi.candlesticks",
    )


def candle_schema(allowed_tickers: Iterable[str]) -> pa.DataFrameSchema:
    """Return the pandera schema a clean candle frame satisfies for the given set of tickers."""
    return _schema(allowed_tickers, None)


def _nan_to_none(series: pd.Series) -> pd.Series:
    """Return the column as objects with float NaN replaced by None (other values untouched)."""
    try:
        # Float NaN is null to pandas, so only the null cells need a look.
        nulls = pd.isna(series.to_numpy()) if series.dtype == object else None
    except ArithmeticError:  # a signalling Decimal NaN refuses the comparison isna makes
        nulls = None
    if nulls is None:
        values = [None if isinstance(v, float) and v != v else v for v in series.tolist()]
        return pd.Series(values, index=series.index, dtype=object)
    values = series.to_numpy(copy=True)
    for i in np.flatnonzero(nulls):
        v = values[i]
        if isinstance(v, float) and v != v:
            values[i] = None
    return pd.Series(values, index=series.index, dtype=object)


def validate_candles(
    df: pd.DataFrame, allowed_tickers: Iterable[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split candles into (valid, rejected); rejected rows carry a `reasons` column.

    Rules: every price in [0, 1]; low <= open, close <= high for price, yes_bid and yes_ask OHLC where
    present; yes_bid <= yes_ask at open and at close where both sides exist; volume and open_interest
    present and >= 0; end_period_ts a multiple of period_interval minutes (interval 1, 60 or 1440);
    (ticker, period_interval, end_period_ts) unique (the first occurrence is kept); every ticker is one
    of `allowed_tickers`; every value fits its warehouse column exactly (at most 6 decimals, within the
    column's precision; a rejected row holds None where its value would not fit). Column or dtype problems fail every row with the schema error as the reason.
    A row's reasons are listed in the order of `RULES` (schema errors after them).
    """
    frame = df.reset_index(drop=True).copy()
    frame["period_interval"] = frame["period_interval"].astype("int64")
    frame["end_period_ts"] = frame["end_period_ts"].astype("int64")
    for col in CANDLE_VALUE_COLUMNS:
        if col in frame.columns:
            frame[col] = _nan_to_none(frame[col])
    reasons: dict[int, list[str]] = {}
    if len(frame):
        cache = _ColumnCache()
        try:
            _schema(allowed_tickers, cache).validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            cases = exc.failure_cases
            for check, index in zip(cases["check"], cases["index"], strict=True):
                label = DUPLICATE_REASON if check == "multiple_fields_uniqueness" else str(check)
                rows = range(len(frame)) if index is None or pd.isna(index) else [int(index)]
                for row in rows:
                    bucket = reasons.setdefault(row, [])
                    if label not in bucket:
                        bucket.append(label)
        finally:
            cache.clear()
    bad = sorted(reasons)
    valid = frame.drop(index=bad).reset_index(drop=True)
    # A value its column cannot hold would fail the write of the whole date: the reject keeps None there
    # (the reason names the rule; the payload keeps the value as received).
    rejected = _storable_values(frame.loc[bad].reset_index(drop=True))
    rank = {name: i for i, name in enumerate(RULES)}
    # pandera lists failure cases in no stable order, so reasons are put in rule order (a stable sort
    # keeps schema errors, which are not in RULES, in the order pandera reported them).
    rejected["reasons"] = [
        "; ".join(sorted(reasons[i], key=lambda r: rank.get(r, len(RULES)))) for i in bad
    ]
    return valid, rejected


def to_table(df: pd.DataFrame, columns: Sequence[str], ingested_at: pd.Timestamp) -> pd.DataFrame:
    """Return candle rows (`end_period_ts` in Unix s) as a table's columns, stamped with `ingested_at`."""
    out = df.copy()
    out["end_period_ts"] = pd.to_datetime(out["end_period_ts"].astype("int64"), unit="s", utc=True)
    out["ingested_at"] = ingested_at
    return out[list(columns)]
