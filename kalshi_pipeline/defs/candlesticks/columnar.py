"""The fast path of the clean step: raw payloads to validated rows column by column, without Decimals.

Fixed-point wire strings are turned into integers scaled by 10**6 (the warehouse's scale), once per
distinct string; the candle rules run as a pandera schema of vectorized checks on those integers; and the
rows that pass are written from canonical fixed-point text built once per distinct integer. No Decimal is
made per candle and every comparison is exact integer arithmetic.

The fast path only ever *accepts*: a row it cannot vouch for -- an unusual payload (not a plain candle
object, a value that is not a fixed-point string, more than six decimals, out of range) or a row failing
any rule -- goes to the reference path (`clean.parse_raw` + `validation.validate_candles`, Decimal-exact),
which accepts or rejects it with the reasons it always gave. Both paths apply the same rules, so a frame
is split into valid and rejected rows exactly as the reference path alone would split it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
import pandera.pandas as pa

from kalshi_pipeline.kalshi.candles import CANDLE_VALUE_FIELDS, candle_value_texts
from kalshi_pipeline.warehouse import unix_seconds_column
from kalshi_pipeline.warehouse.schema import CANDLE_PRICE_COLUMNS, DECIMAL_SHAPES

SCALE = 6
ONE = 10**SCALE
#: Scaled values stay well inside int64, so differences and comparisons never overflow.
_LIMIT = 1 << 62
_NULL = np.iinfo(np.int64).min
_OHLC_GROUPS = ("price", "yes_bid", "yes_ask")
_VALID_PERIODS = (1, 60, 1440)
#: Distinct fixed-point strings remembered (prices repeat heavily); cleared when full.
_SCALED: dict[str, int | None] = {}
_SCALED_MAX = 1 << 17
assert all(scale == SCALE for _, scale in DECIMAL_SHAPES.values())


def scaled(text: str) -> int | None:
    """The integer `text` * 10**6 when `text` is a finite fixed-point number with <= 6 decimals, else None."""
    if text in _SCALED:
        return _SCALED[text]
    value: int | None = None
    try:
        d = Decimal(text.strip())
        # adjusted() bounds the magnitude before int() is asked to build a huge integer.
        if d.is_finite() and d.adjusted() < 18:
            value = int(d.scaleb(SCALE))
            if Decimal(value).scaleb(-SCALE) != d or abs(value) >= _LIMIT:
                value = None
    except InvalidOperation:
        value = None
    if len(_SCALED) >= _SCALED_MAX:
        _SCALED.clear()
    _SCALED[text] = value
    return value


def fixed_text(values: np.ndarray) -> np.ndarray:
    """Canonical fixed-point text (6 decimals) of scaled integers, None where `_NULL`; once per distinct value."""
    distinct, codes = np.unique(values, return_inverse=True)
    texts = np.array(
        [
            None
            if v == _NULL
            else f"{'-' if v < 0 else ''}{abs(v) // ONE}.{abs(v) % ONE:0{SCALE}d}"
            for v in distinct.tolist()
        ],
        dtype=object,
    )
    return texts[codes.reshape(-1)]


@dataclass(frozen=True)
class FastSplit:
    """Rows the fast path accepted (as the clean table's value columns) and the rows left to the reference."""

    #: Positions (in the raw frame) of the accepted rows.
    accepted: np.ndarray
    #: Scaled values of the accepted rows per `CANDLE_VALUE_FIELDS` column (`_NULL` for null).
    values: dict[str, np.ndarray]
    #: Positions of the rows the reference path must decide.
    deferred: np.ndarray


def _scaled_columns(raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Scaled values (rows x fields, `_NULL` for null) and which rows were plain enough to scale."""
    n = len(raw)
    null_row = [_NULL] * len(CANDLE_VALUE_FIELDS)
    rows: list[list[int]] = []
    usual = np.ones(n, dtype=bool)
    loads = json.loads
    known = _SCALED
    for i, (payload, source) in enumerate(
        zip(raw["payload"].tolist(), raw["source"].tolist(), strict=True)
    ):
        try:
            texts = candle_value_texts(loads(payload), source == "historical")
        except (ValueError, TypeError):
            texts = None
        row: list[int | None] | None = None
        if texts is not None:
            try:
                # Known strings only (a miss, or an unhashable value, takes the checked conversion).
                row = [_NULL if t is None else known[t] for t in texts]
            except (KeyError, TypeError):
                row = [
                    _NULL if t is None else (scaled(t) if type(t) is str else None) for t in texts
                ]
        if row is None or None in row:
            usual[i] = False
            rows.append(null_row)
        else:
            rows.append(row)  # type: ignore[arg-type]  # no None left in it
    values = np.array(rows, dtype=np.int64).reshape(n, len(CANDLE_VALUE_FIELDS))
    return values, usual


def _le(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == _NULL) | (b == _NULL) | (a <= b)


def _checks(allowed: frozenset[str]) -> list[pa.Check]:
    """The candle rules (`validation.RULES`) as vectorized checks on scaled columns."""

    def col(df: pd.DataFrame, name: str) -> np.ndarray:
        return df[name].to_numpy()

    def check(fn: Callable[[pd.DataFrame], np.ndarray], name: str) -> pa.Check:
        return pa.Check(
            lambda df: pd.Series(fn(df), index=df.index, dtype=bool), name=name, ignore_na=False
        )

    def unit_interval(df: pd.DataFrame) -> np.ndarray:
        ok = np.ones(len(df), dtype=bool)
        for name in CANDLE_PRICE_COLUMNS:
            v = col(df, name)
            ok &= (v == _NULL) | ((v >= 0) & (v <= ONE))
        return ok

    def ohlc(group: str) -> pa.Check:
        def consistent(df: pd.DataFrame) -> np.ndarray:
            o, h, lo, c = (col(df, f"{group}_{n}") for n in ("open", "high", "low", "close"))
            return _le(lo, o) & _le(o, h) & _le(lo, c) & _le(c, h) & _le(lo, h)

        return check(consistent, f"{group} low <= open, close <= high")

    def aligned(df: pd.DataFrame) -> np.ndarray:
        periods = col(df, "period_interval")
        valid = np.isin(periods, _VALID_PERIODS)
        return valid & (col(df, "end_period_ts") % (np.where(valid, periods, 1) * 60) == 0)

    return [
        check(unit_interval, "price outside [0, 1]"),
        *(ohlc(g) for g in _OHLC_GROUPS),
        check(
            lambda df: _le(col(df, "yes_bid_open"), col(df, "yes_ask_open")),
            "yes_bid_open > yes_ask_open",
        ),
        check(
            lambda df: _le(col(df, "yes_bid_close"), col(df, "yes_ask_close")),
            "yes_bid_close > yes_ask_close",
        ),
        check(lambda df: col(df, "volume") >= 0, "volume missing or negative"),
        check(lambda df: col(df, "open_interest") >= 0, "open_interest missing or negative"),
        check(aligned, "end_period_ts not aligned to period_interval"),
        check(
            lambda df: df["ticker"].isin(allowed).to_numpy(),
            "ticker not in partition's games",
        ),
        # A repeated key is left to the reference path, which keeps the first and rejects the rest.
        check(
            lambda df: (
                ~df.duplicated(
                    ["ticker", "period_interval", "end_period_ts"], keep=False
                ).to_numpy()
            ),
            "duplicate (ticker, period_interval, end_period_ts)",
        ),
    ]


def fast_split(raw: pd.DataFrame, allowed_tickers: Iterable[str]) -> FastSplit:
    """Scale the raw rows' values and run the candle rules on them (a pandera schema, vectorized).

    Rows that are plain and pass every rule are accepted; every other row is deferred to the reference path.
    """
    values, usual = _scaled_columns(raw)
    frame = pd.DataFrame(
        {name: values[:, j] for j, name in enumerate(CANDLE_VALUE_FIELDS)}, copy=False
    )
    frame["ticker"] = raw["ticker"].to_numpy(dtype=object)
    frame["period_interval"] = raw["period_interval"].to_numpy(dtype=np.int64)
    frame["end_period_ts"] = np.asarray(unix_seconds_column(raw["end_period_ts"]), dtype=np.int64)
    ok = usual.copy()
    if len(frame):
        schema = pa.DataFrameSchema(
            checks=_checks(frozenset(allowed_tickers)), strict=False, name="kalshi.candlesticks"
        )
        try:
            schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            failed = exc.failure_cases["index"].dropna().astype(np.int64).to_numpy()
            ok[failed] = False
    accepted = np.flatnonzero(ok)
    return FastSplit(
        accepted=accepted,
        values={name: values[accepted, j] for j, name in enumerate(CANDLE_VALUE_FIELDS)},
        deferred=np.flatnonzero(~ok),
    )


def accepted_rows(raw: pd.DataFrame, split: FastSplit) -> pd.DataFrame:
    """The accepted rows as parsed candles (`validation.PARSED_COLUMNS`): values as fixed-point text,
    `end_period_ts` in Unix seconds."""
    picked = raw.iloc[split.accepted].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "ticker": picked["ticker"].to_numpy(dtype=object),
            "event_ticker": picked["event_ticker"].to_numpy(dtype=object),
            "series_ticker": picked["series_ticker"].to_numpy(dtype=object),
            "game_date": picked["game_date"].to_numpy(dtype=object),
            "period_interval": picked["period_interval"].to_numpy(dtype=np.int64),
            "end_period_ts": np.asarray(
                unix_seconds_column(picked["end_period_ts"]), dtype=np.int64
            ),
        }
    )
    for name in CANDLE_VALUE_FIELDS:
        # An object Series keeps None as None (no inference to a string dtype with NaN).
        out[name] = pd.Series(fixed_text(split.values[name]), dtype=object)
    out["source"] = picked["source"].to_numpy(dtype=object)
    out["payload"] = picked["payload"].to_numpy(dtype=object)
    return out
