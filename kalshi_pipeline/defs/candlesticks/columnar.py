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
import pyarrow
import pyarrow.compute

from kalshi_pipeline.defs.candlesticks.payloads import payload_value_texts
from kalshi_pipeline.kalshi.candles import CANDLE_VALUE_FIELDS, candle_value_texts
from kalshi_pipeline.warehouse import unix_seconds_column
from kalshi_pipeline.warehouse.schema import CANDLE_PRICE_COLUMNS, CANDLESTICKS, DECIMAL_SHAPES

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
    """Scaled values (rows x fields, `_NULL` for null) and which rows were plain enough to scale.

    The payloads are read in bulk (`payloads.payload_value_texts`) and each distinct string is scaled
    once; a batch pyarrow refuses is read payload by payload instead, with the same outcome per row.
    """
    n = len(raw)
    historical = raw["source"].to_numpy(dtype=object) == "historical"
    got = payload_value_texts(raw["payload"].tolist(), historical) if n else None
    if got is None:
        return _scaled_columns_per_payload(raw)
    texts, usual = got
    values = np.empty((n, len(CANDLE_VALUE_FIELDS)), dtype=np.int64)
    for j, column in enumerate(texts):
        values[:, j], ok = _scale_column(column)
        usual &= ok
    values[~usual] = _NULL
    return values, usual


#: Fixed-point text the vectorized parse handles: at most 12 integer and 6 decimal digits.
_PLAIN_FIXED = r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$"


def _scale_plain(texts: pyarrow.Array) -> tuple[np.ndarray, np.ndarray]:
    """Scaled values of strings matching `_PLAIN_FIXED`, in C++ (digits joined, then cast to int64).

    Returns (values, plain): rows that do not match get 0 and `plain` False. For matching text the
    result is exactly `scaled(text)`: the integer digits followed by the decimals padded to six.
    """
    call = pyarrow.compute.call_function
    plain = call(
        "match_substring_regex", [texts], pyarrow.compute.MatchSubstringOptions(_PLAIN_FIXED)
    ).fill_null(False)
    safe = call("if_else", [plain, texts, pyarrow.scalar("0")])
    negative = call("starts_with", [safe], pyarrow.compute.MatchSubstringOptions("-"))
    digits = call("replace_substring", [safe], pyarrow.compute.ReplaceSubstringOptions("-", ""))
    whole = call(
        "replace_substring_regex", [digits], pyarrow.compute.ReplaceSubstringOptions(r"\..*$", "")
    )
    decimals = call(
        "replace_substring_regex",
        [digits],
        pyarrow.compute.ReplaceSubstringOptions(r"^[0-9]*\.?", ""),
    )
    padded = call("utf8_rpad", [decimals], pyarrow.compute.PadOptions(SCALE, "0"))
    joined = call("binary_join_element_wise", [whole, padded, pyarrow.scalar("")])
    magnitude = joined.cast(pyarrow.int64()).to_numpy(zero_copy_only=False)
    sign = np.where(negative.to_numpy(zero_copy_only=False), -1, 1)
    return magnitude * sign, np.asarray(plain.to_numpy(zero_copy_only=False), dtype=bool)


def _scale_column(column: pyarrow.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Scaled values of a string column (`_NULL` for null) and where they scaled, once per distinct string.

    Distinct strings in plain fixed-point form are converted in C++ (`_scale_plain`); any other string
    takes `scaled`, which decides it exactly.
    """
    encoded = column.combine_chunks().dictionary_encode()
    distinct = encoded.dictionary
    lookup = np.empty(len(distinct) + 1, dtype=np.int64)
    ok = np.ones(len(distinct) + 1, dtype=bool)
    if len(distinct):
        lookup[:-1], plain = _scale_plain(distinct)
        for k in np.flatnonzero(~plain).tolist():
            value = scaled(distinct[k].as_py())
            lookup[k] = 0 if value is None else value
            ok[k] = value is not None
    lookup[-1] = _NULL  # code -1: the payload has no value here
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return lookup[codes], ok[codes]


def _scaled_columns_per_payload(raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """`_scaled_columns` payload by payload (`json.loads`), for batches pyarrow refuses."""
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


def _decimal_array(values: np.ndarray, precision: int) -> pyarrow.Array:
    """Scaled integers (`_NULL` for null) as an exact decimal128 array at the warehouse's scale."""
    valid = values != _NULL
    data = np.zeros((len(values), 2), dtype=np.int64)
    data[:, 0] = np.where(valid, values, 0)
    data[:, 1] = data[:, 0] >> 63  # the sign extended into the high 64 bits (two's complement)
    nulls = int((~valid).sum())
    bitmap = pyarrow.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pyarrow.Array.from_buffers(
        pyarrow.decimal128(precision, SCALE),
        len(values),
        [bitmap, pyarrow.py_buffer(data)],
        null_count=nulls,
    )


def accepted_table(raw: pd.DataFrame, split: FastSplit, ingested_at_ts: int) -> pyarrow.Table:
    """The accepted rows as `kalshi.candlesticks` rows in wire form (`Transaction.upsert_arrow`).

    Values go as decimal128 built from the scaled integers, so they are written exactly as validated.
    """
    picked = raw.iloc[split.accepted]
    n = len(picked)
    game_dates = pyarrow.array(picked["game_date"].to_numpy(dtype=object), from_pandas=True)
    if not pyarrow.types.is_date32(game_dates.type):
        game_dates = game_dates.cast(pyarrow.date32())
    ends = np.asarray(unix_seconds_column(picked["end_period_ts"]), dtype=np.int64)
    utc = pyarrow.timestamp("s", tz="UTC")
    columns: dict[str, pyarrow.Array] = {
        "ticker": pyarrow.array(picked["ticker"].to_numpy(dtype=object), pyarrow.string()),
        "event_ticker": pyarrow.array(
            picked["event_ticker"].to_numpy(dtype=object), pyarrow.string()
        ),
        "series_ticker": pyarrow.array(
            picked["series_ticker"].to_numpy(dtype=object), pyarrow.string()
        ),
        "game_date": game_dates,
        "period_interval": pyarrow.array(
            picked["period_interval"].to_numpy(dtype=np.int64), pyarrow.int32()
        ),
        "end_period_ts": pyarrow.array(ends).cast(pyarrow.timestamp("s")).cast(utc),
    }
    for name in CANDLE_VALUE_FIELDS:
        kind = "price" if name in CANDLE_PRICE_COLUMNS else "count"
        columns[name] = _decimal_array(split.values[name], DECIMAL_SHAPES[kind][0])
    columns["source"] = pyarrow.array(picked["source"].to_numpy(dtype=object), pyarrow.string())
    columns["ingested_at"] = (
        pyarrow.array(np.full(n, ingested_at_ts, dtype=np.int64))
        .cast(pyarrow.timestamp("s"))
        .cast(utc)
    )
    return pyarrow.table({c: columns[c] for c in CANDLESTICKS.column_names})
