"""Validation and normalization of DataFrames into the exact wire form the warehouse writes.

`prepare_frame(spec, df)` checks the columns against the table spec and converts every column so that no
value is ever routed through a float: decimals become canonical fixed-point strings (cast to NUMERIC/DECIMAL by
the database), timestamps become tz-aware UTC, dates become ISO strings.

Accepted inputs per logical type:

- price / count: `decimal.Decimal`, `int`, or numeric strings; `None`/`NaN`/`pd.NA`/`Decimal('NaN')` mean NULL. Floats are refused
  (they cannot carry exact cents). Values with more fractional digits than the column scale are refused.
- timestamptz: tz-aware datetimes / pandas Timestamps (converted to UTC) or integer Unix seconds; naive
  datetimes are refused.
- date: `datetime.date`, ISO `YYYY-MM-DD` strings, or naive datetime64 at midnight.
- int: integers (a float column holding only whole numbers and NaN is accepted); text: `str`; json: `str`
  (kept byte for byte) or `dict`/`list` (serialized with `json.dumps`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kalshi_pipeline.warehouse.errors import WarehouseDataError
from kalshi_pipeline.warehouse.schema import DECIMAL_SHAPES, TableSpec


@dataclass(frozen=True)
class PreparedFrame:
    """A DataFrame converted to wire form for one table, deduplicated on the primary key (last row wins)."""

    spec: TableSpec
    columns: tuple[str, ...]
    frame: pd.DataFrame
    input_rows: int

    @property
    def rows(self) -> int:
        """Number of distinct rows to write."""
        return len(self.frame)


def prepare_frame(spec: TableSpec, df: pd.DataFrame) -> PreparedFrame:
    """Validate `df` against `spec` and return it in wire form; raise `WarehouseDataError` on any mismatch."""
    if not isinstance(df, pd.DataFrame):
        raise WarehouseDataError(
            f"upsert into {spec.qualified} needs a pandas DataFrame, got {type(df).__name__}"
        )
    given = [str(c) for c in df.columns]
    if len(set(given)) != len(given):
        dupes = sorted({c for c in given if given.count(c) > 1})
        raise WarehouseDataError(f"DataFrame for {spec.qualified} has duplicate columns {dupes}")
    known = set(spec.column_names)
    required = {c.name for c in spec.columns if not c.default_now}
    missing = [c for c in spec.column_names if c in required and c not in given]
    extra = [c for c in given if c not in known]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"is missing columns {missing}")
        if extra:
            parts.append(f"has unknown columns {extra}")
        raise WarehouseDataError(
            f"DataFrame for {spec.qualified} {' and '.join(parts)}; expected columns "
            f"{list(spec.column_names)} (ingested_at optional)"
        )
    columns = tuple(c for c in spec.column_names if c in given)
    out: dict[str, Any] = {}
    for name in columns:
        col = spec.column(name)
        series = df[name].reset_index(drop=True)
        where = f"{spec.qualified}.{name}"
        converted = _CONVERTERS[col.type](series, where, col.type)
        if not col.nullable:
            nulls = int(pd.isna(converted).sum())
            if nulls:
                raise WarehouseDataError(
                    f"column {where} is NOT NULL but has {nulls} missing value(s)"
                )
        out[name] = converted
    frame = pd.DataFrame(out, columns=list(columns))
    input_rows = len(frame)
    if input_rows:
        dup = frame.duplicated(subset=list(spec.primary_key), keep="last")
        if dup.any():
            frame = frame.loc[~dup].reset_index(drop=True)
    return PreparedFrame(spec, columns, frame, input_rows)


def _nulls(series: pd.Series) -> np.ndarray:
    return np.asarray(pd.isna(series), dtype=bool)


def object_values(series: pd.Series) -> np.ndarray:
    """The column's values as a NumPy object array, every missing value (NaN, NaT, pd.NA) as None."""
    # pandas documents `na_value=None`; pandas-stubs types the argument as a non-None scalar.
    return series.to_numpy(dtype=object, na_value=None)  # pyright: ignore[reportArgumentType, reportCallIssue]


def _to_object(series: pd.Series) -> pd.Series:
    return pd.Series(object_values(series), dtype=object)


def map_distinct(series: pd.Series, convert: Callable[[Any], Any]) -> pd.Series:
    """Apply `convert` once per distinct non-null value (values repeat heavily) and map the results back."""
    codes, uniques = pd.factorize(object_values(series), use_na_sentinel=True)
    converted = np.empty(len(uniques) + 1, dtype=object)
    for i, value in enumerate(uniques):
        converted[i] = convert(value)
    converted[-1] = None  # code -1 marks a missing value
    return pd.Series(converted[codes], dtype=object)


def _text(series: pd.Series, where: str, kind: str) -> pd.Series:
    def convert(v: Any) -> str:
        if isinstance(v, str):
            return v
        if kind == "json" and isinstance(v, dict | list):
            return json.dumps(v)
        raise WarehouseDataError(
            f"column {where} holds {type(v).__name__} value {v!r}; expected str"
            + (" (or dict/list JSON)" if kind == "json" else "")
        )

    if kind == "json":
        # dicts and lists are unhashable, so JSON goes value by value.
        values = object_values(series)
        mask = _nulls(series)
        return pd.Series(
            [None if m else convert(v) for v, m in zip(values, mask, strict=True)], dtype=object
        )
    return map_distinct(series, convert)


def _int(series: pd.Series, where: str, kind: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        raise WarehouseDataError(f"column {where} holds booleans; expected integers")
    try:
        return pd.Series(pd.array(object_values(series), dtype="Int64"))
    except (TypeError, ValueError) as exc:
        raise WarehouseDataError(f"column {where} must hold integers: {exc}") from None


def _bool(series: pd.Series, where: str, kind: str) -> pd.Series:
    try:
        return pd.Series(pd.array(object_values(series), dtype="boolean"))
    except (TypeError, ValueError) as exc:
        raise WarehouseDataError(f"column {where} must hold booleans: {exc}") from None


def _decimal(series: pd.Series, where: str, kind: str) -> pd.Series:
    precision, scale = DECIMAL_SHAPES[kind]
    quantum = Decimal(1).scaleb(-scale)
    if pd.api.types.is_float_dtype(series.dtype) and not series.isna().all():
        raise WarehouseDataError(
            f"column {where} is float ({series.dtype}); pass decimal.Decimal values so prices stay exact"
        )
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "string":
        # Plain fixed-point text within the column's digits (what the fast candle path writes) is
        # already the exact wire form: checked by pattern, not converted value by value.
        values = object_values(series)
        pattern = _fixed_pattern(precision - scale, scale)
        if all(v is None or pattern(v) for v in values.tolist()):
            return pd.Series(values, dtype=object)
    # Distinct values are converted once, and equal values share a code (0.5 == Decimal("0.5")), so
    # floats and booleans are looked for separately; the C type scan keeps the common case fast.
    if inferred not in (
        "decimal",
        "integer",
        "string",
        "empty",
    ):
        for v in object_values(series):
            if isinstance(v, bool | np.bool_) or (
                isinstance(v, float | np.floating) and not math.isnan(v)
            ):
                raise WarehouseDataError(
                    f"column {where} holds {type(v).__name__} value {v!r}; "
                    "pass decimal.Decimal so it stays exact"
                )
    return map_distinct(
        series, lambda v: _decimal_text(v, where, precision - scale, quantum, scale)
    )


@functools.cache
def _fixed_pattern(int_digits: int, scale: int) -> Callable[[str], Any]:
    """A matcher of plain fixed-point text with at most `int_digits` integer and `scale` decimal digits."""
    return re.compile(rf"-?[0-9]{{1,{int_digits}}}(?:\.[0-9]{{1,{scale}}})?").fullmatch


def _decimal_text(v: Any, where: str, int_digits: int, quantum: Decimal, scale: int) -> str:
    if type(v) is Decimal:
        d = v
    elif isinstance(v, bool | float | np.floating):
        raise WarehouseDataError(
            f"column {where} holds {type(v).__name__} value {v!r}; pass decimal.Decimal so it stays exact"
        )
    elif isinstance(v, Decimal):
        d = v
    elif isinstance(v, int | np.integer):
        d = Decimal(int(v))
    elif isinstance(v, str):
        try:
            d = Decimal(v.strip())
        except InvalidOperation:
            raise WarehouseDataError(f"column {where} holds non-numeric string {v!r}") from None
    else:
        raise WarehouseDataError(
            f"column {where} holds {type(v).__name__} value {v!r}; expected decimal.Decimal"
        )
    if not d.is_finite():
        raise WarehouseDataError(f"column {where} holds non-finite value {v!r}")
    text = format(d, "f")
    dot = text.find(".")
    if dot >= 0 and len(text) - dot - 1 > scale:
        rounded = d.quantize(quantum)
        if rounded != d:
            raise WarehouseDataError(
                f"column {where} value {text} has more than {scale} fractional digits"
            )
        text = format(rounded, "f")
        dot = text.find(".")
    whole = text[:dot] if dot >= 0 else text
    if len(whole.lstrip("-")) > int_digits:
        raise WarehouseDataError(
            f"column {where} value {text} exceeds the column range ({int_digits} integer digits)"
        )
    return text


def _timestamptz(series: pd.Series, where: str, kind: str) -> pd.Series:
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.as_unit("us")
    if pd.api.types.is_datetime64_dtype(dtype):
        raise WarehouseDataError(
            f"column {where} holds naive timestamps; localize them to UTC (tz-aware) first"
        )
    if pd.api.types.is_integer_dtype(dtype):
        return pd.to_datetime(series, unit="s", utc=True).dt.as_unit("us")
    if pd.api.types.is_float_dtype(dtype) and series.isna().all():
        return pd.Series(pd.NaT, index=series.index, dtype="datetime64[us, UTC]")
    values = object_values(series)
    mask = _nulls(series)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if mask[i]:
            out[i] = pd.NaT
        elif isinstance(v, dt.datetime):
            if v.tzinfo is None or v.tzinfo.utcoffset(v) is None:
                raise WarehouseDataError(
                    f"column {where} holds naive datetime {v!r}; make it tz-aware (UTC)"
                )
            out[i] = pd.Timestamp(v).tz_convert("UTC")
        elif isinstance(v, int | np.integer) and not isinstance(v, bool):
            out[i] = pd.Timestamp(int(v), unit="s", tz="UTC")
        else:
            raise WarehouseDataError(
                f"column {where} holds {type(v).__name__} value {v!r}; "
                "expected a tz-aware datetime or Unix seconds"
            )
    return pd.Series(pd.to_datetime(out, utc=True)).dt.as_unit("us")


def _date(series: pd.Series, where: str, kind: str) -> pd.Series:
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        raise WarehouseDataError(
            f"column {where} holds tz-aware timestamps; pass datetime.date (the game's local date)"
        )
    if pd.api.types.is_datetime64_dtype(dtype):
        if (series.dropna() != series.dropna().dt.normalize()).any():
            raise WarehouseDataError(f"column {where} holds timestamps with a time of day")
        return _to_object(series.dt.strftime("%Y-%m-%d"))

    def convert(v: Any) -> str:
        if isinstance(v, dt.datetime):
            raise WarehouseDataError(
                f"column {where} holds datetime {v!r}; pass datetime.date (the game's local date)"
            )
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, str):
            try:
                return dt.date.fromisoformat(v.strip()).isoformat()
            except ValueError:
                raise WarehouseDataError(
                    f"column {where} holds {v!r}; expected a YYYY-MM-DD date"
                ) from None
        raise WarehouseDataError(
            f"column {where} holds {type(v).__name__} value {v!r}; expected datetime.date"
        )

    return map_distinct(series, convert)


_CONVERTERS = {
    "text": _text,
    "json": _text,
    "int": _int,
    "bool": _bool,
    "price": _decimal,
    "count": _decimal,
    "timestamptz": _timestamptz,
    "date": _date,
}


@dataclass(frozen=True)
class PreparedArrow:
    """An Arrow table checked against one table spec: its columns already in the table's wire types."""

    spec: TableSpec
    columns: tuple[str, ...]
    table: pa.Table

    @property
    def rows(self) -> int:
        """Number of rows to write."""
        return self.table.num_rows


def arrow_type_ok(logical: str, arrow_type: pa.DataType) -> bool:
    """Whether an Arrow column type carries a logical column type exactly (no float, no naive time)."""
    if logical in ("text", "json"):
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    if logical == "int":
        return pa.types.is_integer(arrow_type)
    if logical == "bool":
        return pa.types.is_boolean(arrow_type)
    if logical in DECIMAL_SHAPES:
        precision, scale = DECIMAL_SHAPES[logical]
        return pa.types.is_decimal(arrow_type) and (
            arrow_type.precision <= precision and arrow_type.scale == scale
        )
    if logical == "timestamptz":
        return pa.types.is_timestamp(arrow_type) and arrow_type.tz in ("UTC", "+00:00")
    if logical == "date":
        return pa.types.is_date32(arrow_type)
    return False


def prepare_arrow(spec: TableSpec, table: pa.Table) -> PreparedArrow:
    """Check an Arrow table against `spec` (names, exact types, NOT NULL, unique primary key).

    The bulk path of candle writes: values arrive already in wire form (decimals as decimal128 at the
    column's scale, times as UTC timestamps), so nothing is converted. Raises `WarehouseDataError` on any
    mismatch, naming the column.
    """
    given = list(table.column_names)
    known = set(spec.column_names)
    required = {c.name for c in spec.columns if not c.default_now}
    missing = [c for c in spec.column_names if c in required and c not in given]
    extra = [c for c in given if c not in known]
    if missing or extra or len(set(given)) != len(given):
        raise WarehouseDataError(
            f"Arrow table for {spec.qualified} has columns {given}; expected "
            f"{list(spec.column_names)} (ingested_at optional), each once"
        )
    for name in given:
        col = spec.column(name)
        arrow_type = table.schema.field(name).type
        if not arrow_type_ok(col.type, arrow_type):
            raise WarehouseDataError(
                f"column {spec.qualified}.{name} ({col.type}) cannot be written from Arrow type "
                f"{arrow_type}"
            )
        nulls = table.column(name).null_count
        if not col.nullable and nulls:
            raise WarehouseDataError(
                f"column {spec.qualified}.{name} is NOT NULL but has {nulls} missing value(s)"
            )
    key = list(spec.primary_key)
    if table.num_rows and table.group_by(key).aggregate([]).num_rows != table.num_rows:
        raise WarehouseDataError(
            f"Arrow table for {spec.qualified} repeats a primary key {tuple(key)}; send each row once"
        )
    columns = tuple(c for c in spec.column_names if c in given)
    return PreparedArrow(spec, columns, table.select(list(columns)))
