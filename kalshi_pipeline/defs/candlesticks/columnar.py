"""The fast path of the clean step: raw payloads to validated rows column by column, without Decimals.

Fixed-point wire strings are turned into integers scaled by 10**6 (the warehouse's scale), once per
distinct string; the candle rules run as a pandera schema of vectorized checks on those integers; and the
rows that pass are written from canonical fixed-point text built once per distinct integer. No Decimal is
made per candle and every comparison is exact integer arithmetic.

The raw rows are read as Arrow columns (`raw_columns`: the table `pull.raw_table` builds, or a frame read
back from the warehouse converted once), so no Python object is made per candle either: the payloads go
to pyarrow's JSON reader as one buffer (`payloads.payload_value_texts`), ticker membership and repeated
keys are decided on dictionary codes, pandera sees only int64 and bool columns, and the accepted rows are
taken from the raw columns (`accepted_table`).

The fast path only ever *accepts*: a row it cannot vouch for -- an unusual payload (not a plain candle
object, a value that is not a fixed-point string, more than six decimals, out of range) or a row failing
any rule -- goes to the reference path (`clean.parse_raw` + `validation.validate_candles`, Decimal-exact),
which accepts or rejects it with the reasons it always gave. Both paths apply the same rules, so a frame
is split into valid and rejected rows exactly as the reference path alone would split it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute

from kalshi_pipeline.defs.candlesticks.payloads import one_array, payload_value_texts
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


#: The raw columns the clean step reads, as `raw_columns` gives them.
RAW_COLUMNS = pyarrow.schema(
    [
        ("ticker", pyarrow.string()),
        ("event_ticker", pyarrow.string()),
        ("series_ticker", pyarrow.string()),
        ("game_date", pyarrow.date32()),
        ("period_interval", pyarrow.int64()),
        # Unix seconds.
        ("end_period_ts", pyarrow.int64()),
        ("source", pyarrow.string()),
        ("payload", pyarrow.string()),
    ]
)
_TEXT_COLUMNS = ("ticker", "event_ticker", "series_ticker", "source", "payload")


def raw_columns(raw: pyarrow.Table | pd.DataFrame) -> pyarrow.Table:
    """The raw rows' columns the clean step reads, as Arrow arrays of `RAW_COLUMNS`' types, in row order.

    `raw` is the table `pull.raw_table` builds (its columns are taken as they are, only retyped), a
    frame read back from the warehouse (converted once, column by column), or a table already returned
    by this function. `end_period_ts` becomes Unix seconds as `unix_seconds_column` reads them (a
    missing or naive time raises `WarehouseDataError`).
    """
    if isinstance(raw, pd.DataFrame):
        columns: dict[str, pyarrow.Array] = {
            name: pyarrow.array(raw[name], pyarrow.string(), from_pandas=True)
            for name in _TEXT_COLUMNS
        }
        columns["game_date"] = pyarrow.array(
            raw["game_date"].to_numpy(dtype=object), from_pandas=True
        )
        columns["period_interval"] = pyarrow.array(raw["period_interval"].to_numpy(dtype=np.int64))
        columns["end_period_ts"] = pyarrow.array(
            np.asarray(unix_seconds_column(raw["end_period_ts"]), dtype=np.int64)
        )
    else:
        columns = {name: one_array(raw[name]) for name in RAW_COLUMNS.names}
        columns["end_period_ts"] = _unix_seconds(columns["end_period_ts"])
    for name in RAW_COLUMNS.names:
        wanted = RAW_COLUMNS.field(name).type
        if columns[name].type != wanted:
            columns[name] = columns[name].cast(wanted)
    return pyarrow.Table.from_pydict(columns, schema=RAW_COLUMNS)


def _unix_seconds(ends: pyarrow.Array) -> pyarrow.Array:
    """Unix seconds of an Arrow column of candle end times, as `unix_seconds_column` reads them."""
    kind = ends.type
    if pyarrow.types.is_integer(kind):
        return ends.cast(pyarrow.int64())
    if pyarrow.types.is_timestamp(kind) and kind.tz is not None and not ends.null_count:
        ticks = ends.cast(pyarrow.int64())
        if kind.unit == "s":
            return ticks
        per_second = {"ms": 10**3, "us": 10**6, "ns": 10**9}[kind.unit]
        return pyarrow.array(ticks.to_numpy() // per_second)  # floored, as `unix_seconds` does
    # Anything else (missing, naive or unusual times) is decided, or refused, value by value.
    return pyarrow.array(
        np.asarray(unix_seconds_column(ends.to_pandas()), dtype=np.int64), pyarrow.int64()
    )


@dataclass(frozen=True)
class FastSplit:
    """Rows the fast path accepted (as the clean table's value columns) and the rows left to the reference."""

    #: Positions (in the raw rows) of the accepted rows.
    accepted: np.ndarray
    #: Scaled values of the accepted rows per `CANDLE_VALUE_FIELDS` column (`_NULL` for null).
    values: dict[str, np.ndarray]
    #: Positions of the rows the reference path must decide.
    deferred: np.ndarray


def _scaled_columns(rows: pyarrow.Table) -> tuple[np.ndarray, np.ndarray]:
    """Scaled values (rows x fields, `_NULL` for null) and which rows were plain enough to scale.

    `rows` are `raw_columns`. The payloads are read in bulk (`payloads.payload_value_texts`) and each
    distinct string of every value column is scaled once; a batch pyarrow refuses is read payload by
    payload instead, with the same outcome per row.
    """
    n = rows.num_rows
    historical = _historical(rows)
    got = payload_value_texts(rows["payload"], historical) if n else None
    if got is None:
        return _scaled_columns_per_payload(rows)
    texts, usual = got
    by_column, ok = _scale_columns(texts)
    values = by_column.T  # rows x fields; each field's column stays contiguous
    usual &= ok.all(axis=0)
    values[~usual] = _NULL
    return values, usual


def _historical(rows: pyarrow.Table) -> np.ndarray:
    """Which rows hold historical payloads (`source = 'historical'`)."""
    found = pyarrow.compute.call_function(
        "equal", [rows["source"], pyarrow.scalar("historical")]
    ).fill_null(False)
    return np.asarray(found.to_numpy(), dtype=bool)


#: Fixed-point text the vectorized parse handles: at most 12 integer and 6 decimal digits.
_PLAIN_FIXED = r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$"


#: Plain fixed-point text has at most 18 digits, so its value fits this exactly.
_PLAIN_DECIMAL = pyarrow.decimal128(18, SCALE)


def _scale_plain(texts: pyarrow.Array) -> tuple[np.ndarray, np.ndarray]:
    """Scaled values of strings matching `_PLAIN_FIXED`, in C++ (cast to an exact decimal at scale 6).

    Returns (values, plain): rows that do not match get 0 and `plain` False. For matching text the
    result is exactly `scaled(text)`: the decimal's unscaled integer is the integer digits followed by
    the decimals padded to six.
    """
    call = pyarrow.compute.call_function
    plain = call(
        "match_substring_regex", [texts], pyarrow.compute.MatchSubstringOptions(_PLAIN_FIXED)
    ).fill_null(False)
    safe = call("if_else", [plain, texts, pyarrow.scalar("0")]).cast(_PLAIN_DECIMAL)
    # decimal128 is 16-byte little-endian two's complement; |value| < 10**18 lives in the low 8 bytes.
    words = np.frombuffer(safe.buffers()[1], dtype=np.int64)
    values = words[2 * safe.offset : 2 * (safe.offset + len(safe)) : 2].copy()
    return values, np.asarray(plain.to_numpy(zero_copy_only=False), dtype=bool)


def _scale_columns(columns: Sequence[pyarrow.Array]) -> tuple[np.ndarray, np.ndarray]:
    """Scaled values of string columns (columns x rows, `_NULL` for null) and where they scaled.

    Each column is dictionary-encoded, and the distinct strings of all of them are scaled in one pass:
    plain fixed-point text in C++ (`_scale_plain`), any other string by `scaled`, which decides it
    exactly.
    """
    encoded = [c.dictionary_encode() for c in columns]
    sizes = np.array([len(e.dictionary) for e in encoded], dtype=np.int64)
    total = int(sizes.sum())
    lookup = np.empty(total + 1, dtype=np.int64)
    ok = np.ones(total + 1, dtype=bool)
    if total:
        distinct = pyarrow.concat_arrays([e.dictionary for e in encoded])
        lookup[:-1], plain = _scale_plain(distinct)
        for k in np.flatnonzero(~plain).tolist():
            value = scaled(distinct[k].as_py())
            lookup[k] = 0 if value is None else value
            ok[k] = value is not None
    lookup[-1] = _NULL  # the payload has no value here
    ok[-1] = True
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    codes = np.empty((len(encoded), len(columns[0]) if columns else 0), dtype=np.int64)
    for j, e in enumerate(encoded):
        raw_codes = e.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        codes[j] = np.where(raw_codes < 0, total, raw_codes + starts[j])
    return lookup[codes], ok[codes]


def _scale_column(
    column: pyarrow.Array | pyarrow.ChunkedArray,
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled values of one string column (`_NULL` for null) and where they scaled (`_scale_columns`)."""
    values, ok = _scale_columns([one_array(column)])
    return values[0], ok[0]


def _scaled_columns_per_payload(rows: pyarrow.Table) -> tuple[np.ndarray, np.ndarray]:
    """`_scaled_columns` payload by payload (`json.loads`), for batches pyarrow refuses."""
    n = rows.num_rows
    null_row = [_NULL] * len(CANDLE_VALUE_FIELDS)
    out: list[list[int]] = []
    usual = np.ones(n, dtype=bool)
    loads = json.loads
    known = _SCALED
    historical = _historical(rows).tolist()
    for i, (payload, hist) in enumerate(zip(rows["payload"].to_pylist(), historical, strict=True)):
        try:
            texts = candle_value_texts(loads(payload), hist)
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
            out.append(null_row)
        else:
            out.append(row)  # type: ignore[arg-type]  # no None left in it
    values = np.array(out, dtype=np.int64).reshape(n, len(CANDLE_VALUE_FIELDS))
    return values, usual


def _le(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == _NULL) | (b == _NULL) | (a <= b)


def _checks() -> list[pa.Check]:
    """The candle rules (`validation.RULES`) as vectorized checks on scaled columns.

    Ticker membership and repeated keys arrive as bool columns (`_allowed`, `_unrepeated`): the frame
    holds int64 and bool columns only.
    """

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
        check(lambda df: col(df, "_allowed"), "ticker not in partition's games"),
        # A repeated key is left to the reference path, which keeps the first and rejects the rest.
        check(
            lambda df: col(df, "_unrepeated"),
            "duplicate (ticker, period_interval, end_period_ts)",
        ),
    ]


#: The candle rules over a frame of scaled values (`fast_split`).
_SCHEMA = pa.DataFrameSchema(
    checks=[
        # One check for the whole frame (a per-column dtype spec would cost pandera a pass per column).
        pa.Check(
            lambda df: all(t == np.int64 or t == np.bool_ for t in df.dtypes),
            name="int64 and bool columns only",
        ),
        *_checks(),
    ],
    name="kalshi.candlesticks",
)


def _allowed(tickers: pyarrow.Array, allowed: Iterable[str]) -> np.ndarray:
    """Which rows' ticker is one of `allowed` (a missing ticker is not)."""
    value_set = pyarrow.array(sorted(set(allowed)), pyarrow.string())
    found = pyarrow.compute.call_function(
        "is_in", [tickers], pyarrow.compute.SetLookupOptions(value_set)
    ).fill_null(False)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _unrepeated(tickers: pyarrow.Array, periods: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which rows' (ticker, period_interval, end_period_ts) no other row holds (missing tickers equal)."""
    n = len(periods)
    codes = tickers.dictionary_encode().indices.fill_null(-1).to_numpy(zero_copy_only=False)
    order = np.lexsort((ends, periods, codes))
    c, p, e = codes[order], periods[order], ends[order]
    same = (c[1:] == c[:-1]) & (p[1:] == p[:-1]) & (e[1:] == e[:-1])
    repeated = np.zeros(n, dtype=bool)
    repeated[1:] |= same
    repeated[:-1] |= same
    out = np.empty(n, dtype=bool)
    out[order] = ~repeated
    return out


def fast_split(raw: pyarrow.Table | pd.DataFrame, allowed_tickers: Iterable[str]) -> FastSplit:
    """Scale the raw rows' values and run the candle rules on them (a pandera schema, vectorized).

    `raw` is anything `raw_columns` takes. Rows that are plain and pass every rule are accepted; every
    other row is deferred to the reference path.
    """
    rows = raw_columns(raw)
    values, usual = _scaled_columns(rows)
    periods = rows["period_interval"].to_numpy()
    ends = rows["end_period_ts"].to_numpy()
    tickers = one_array(rows["ticker"])
    frame = pd.DataFrame(
        {
            **{name: values[:, j] for j, name in enumerate(CANDLE_VALUE_FIELDS)},
            "period_interval": periods,
            "end_period_ts": ends,
            "_allowed": _allowed(tickers, allowed_tickers),
            "_unrepeated": _unrepeated(tickers, periods, ends),
        },
        copy=False,
    )
    ok = usual.copy()
    if len(frame):
        try:
            _SCHEMA.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            index = exc.failure_cases["index"]
            if index.isna().any():
                ok[:] = False  # the frame itself was refused, not rows of it: vouch for none
            else:
                ok[index.astype(np.int64).to_numpy()] = False
    accepted = np.flatnonzero(ok)
    return FastSplit(
        accepted=accepted,
        values={name: values[accepted, j] for j, name in enumerate(CANDLE_VALUE_FIELDS)},
        deferred=np.flatnonzero(~ok),
    )


def deferred_rows(raw: pyarrow.Table | pd.DataFrame, split: FastSplit) -> pd.DataFrame:
    """The rows the reference path must decide, as a frame of `raw`'s columns (positions from 0)."""
    if isinstance(raw, pd.DataFrame):
        return raw.iloc[split.deferred].reset_index(drop=True)
    return raw.take(pyarrow.array(split.deferred, pyarrow.int64())).to_pandas()


def accepted_rows(raw: pyarrow.Table | pd.DataFrame, split: FastSplit) -> pd.DataFrame:
    """The accepted rows as parsed candles (`validation.PARSED_COLUMNS`): values as fixed-point text,
    `end_period_ts` in Unix seconds (other columns as `raw` holds them, read back as pandas)."""
    if isinstance(raw, pd.DataFrame):
        picked = raw.iloc[split.accepted].reset_index(drop=True)
    else:
        picked = raw.take(pyarrow.array(split.accepted, pyarrow.int64())).to_pandas()
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


def accepted_table(
    raw: pyarrow.Table | pd.DataFrame, split: FastSplit, ingested_at_ts: int
) -> pyarrow.Table:
    """The accepted rows as `kalshi.candlesticks` rows in wire form (`Transaction.upsert_arrow`).

    `raw` is anything `raw_columns` takes. The key and text columns are taken from the raw columns
    (Arrow `take`); values go as decimal128 built from the scaled integers, so they are written exactly
    as validated.
    """
    rows = raw_columns(raw)
    n = len(split.accepted)
    if n != rows.num_rows:
        rows = rows.take(pyarrow.array(split.accepted, pyarrow.int64()))
    utc = pyarrow.timestamp("s", tz="UTC")
    columns: dict[str, pyarrow.Array] = {
        "ticker": rows["ticker"],
        "event_ticker": rows["event_ticker"],
        "series_ticker": rows["series_ticker"],
        "game_date": rows["game_date"],
        "period_interval": rows["period_interval"].cast(pyarrow.int32()),
        "end_period_ts": rows["end_period_ts"].cast(pyarrow.timestamp("s")).cast(utc),
    }
    for name in CANDLE_VALUE_FIELDS:
        kind = "price" if name in CANDLE_PRICE_COLUMNS else "count"
        columns[name] = _decimal_array(split.values[name], DECIMAL_SHAPES[kind][0])
    columns["source"] = rows["source"]
    columns["ingested_at"] = (
        pyarrow.array(np.full(n, ingested_at_ts, dtype=np.int64))
        .cast(pyarrow.timestamp("s"))
        .cast(utc)
    )
    return pyarrow.table({c: columns[c] for c in CANDLESTICKS.column_names})
