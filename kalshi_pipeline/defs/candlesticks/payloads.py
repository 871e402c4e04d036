"""Stored candle payloads to their value columns in bulk: pyarrow's JSON reader instead of a loop.

The payload column (an Arrow string array, never a Python list) is joined with newlines in C++ and handed
to pyarrow as newline-delimited JSON with an explicit schema: every value field a string, `end_period_ts`
an integer, the three groups objects. pyarrow refuses, for the whole batch, anything that does not fit (a
number or object where a string belongs, a group that is not an object, a payload that is not an object, a
repeated key, two documents on one line); so does this module for a batch holding a null, a payload with a
line break or a blank payload (one payload per line, or rows would shift). The caller then takes the
per-payload path, which decides each row on its own. What pyarrow accepts is read exactly as
`kalshi.candles.candle_value_texts` reads it: absent or null fields are null, historical payloads take the
un-suffixed name and fall back to the suffixed one, live payloads read only the suffixed names.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from kalshi_pipeline.kalshi.candles import CANDLE_VALUE_FIELDS

_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("price", ("open", "high", "low", "close", "mean", "previous")),
    ("yes_bid", ("open", "high", "low", "close")),
    ("yes_ask", ("open", "high", "low", "close")),
)
_COUNTS = ("volume", "open_interest")
assert (
    *(f"{group}_{name}" for group, names in _GROUPS for name in names),
    *_COUNTS,
) == CANDLE_VALUE_FIELDS


def _schema(historical: bool) -> pa.Schema:
    def names(base: str, suffix: str) -> list[str]:
        return [base, base + suffix] if historical else [base + suffix]

    groups = [
        pa.field(
            group,
            pa.struct([(n, pa.string()) for name in parts for n in names(name, "_dollars")]),
        )
        for group, parts in _GROUPS
    ]
    counts = [pa.field(n, pa.string()) for count in _COUNTS for n in names(count, "_fp")]
    return pa.schema([pa.field("end_period_ts", pa.int64()), *groups, *counts])


_SCHEMAS = {False: _schema(False), True: _schema(True)}
_call = pc.call_function  # the kernels by name (pyarrow generates the module's functions)


def _read(payloads: pa.Array, historical: bool) -> pa.Table | None:
    """The payloads as one Arrow table in their order, or None when pyarrow refuses any of them."""
    if payloads.null_count:
        return None
    # The reader skips blank lines (rows would shift). A blank payload does not open with "{": only
    # those few are looked at in Python.
    odd = _call("invert", [_call("starts_with", [payloads], pc.MatchSubstringOptions("{"))])
    if _call("any", [odd]).as_py() and any(not p.strip() for p in payloads.filter(odd).to_pylist()):
        return None
    lines = pa.ListArray.from_arrays(pa.array([0, len(payloads)], pa.int32()), payloads)
    data = _call("binary_join", [lines, pa.scalar("\n")])[0].as_buffer()
    # One payload per line: the joins are the only line breaks ("\n" is 10, "\r" 13). Usually no other
    # byte below 14 occurs at all, which one pass shows.
    text = np.frombuffer(data, dtype=np.uint8)
    joins = len(payloads) - 1
    if np.count_nonzero(text < 14) != joins and (
        np.count_nonzero(text == 10) != joins or np.count_nonzero(text == 13)
    ):
        return None
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            # Blocks of 512 KiB parsed on pyarrow's threads (the GIL is released): a date's ~5 MB of
            # payloads reads 2-3x faster than as one block; rows keep their order.
            read_options=pj.ReadOptions(use_threads=True, block_size=1 << 19),
            parse_options=pj.ParseOptions(
                explicit_schema=_SCHEMAS[historical], unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(payloads) else None


def _value_columns(table: pa.Table, historical: bool) -> list[pa.Array]:
    """The value fields in `CANDLE_VALUE_FIELDS` order, then `end_period_ts`; a null group leaves its
    fields null."""
    out: list[pa.Array] = []
    for group, parts in _GROUPS:
        column = one_array(table[group])
        present = column.is_valid()
        for name in parts:
            value = column.field(name + "_dollars")
            if historical:
                value = _call("coalesce", [column.field(name), value])
            # A struct's children keep their own slots under a null parent; mask them with the parent.
            out.append(_call("if_else", [present, value, pa.scalar(None, pa.string())]))
    for count in _COUNTS:
        value = one_array(table[count + "_fp"])
        if historical:
            value = _call("coalesce", [one_array(table[count]), value])
        out.append(value)
    out.append(one_array(table["end_period_ts"]))
    return out


def one_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one array: its only chunk as it is (`combine_chunks` would copy it), or joined."""
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def _string_array(payloads: pa.Array | pa.ChunkedArray) -> pa.Array:
    whole = one_array(payloads)
    return whole if whole.type == pa.string() else whole.cast(pa.string())


def payload_value_texts(
    payloads: pa.Array | pa.ChunkedArray, historical: np.ndarray
) -> tuple[list[pa.Array], np.ndarray] | None:
    """Read many stored payloads at once: their value fields as strings, and which rows are plain.

    `payloads` is the payload column (Arrow strings) and `historical` marks the rows of historical
    payloads. Returns (columns, plain): one string column per `CANDLE_VALUE_FIELDS` entry (null where
    the payload has no value) and a mask of the rows holding an integer `end_period_ts` and both
    counts, as `candle_value_texts` requires; None when pyarrow refuses the batch (take the
    per-payload path).
    """
    array = _string_array(payloads)
    n = len(array)
    width = len(CANDLE_VALUE_FIELDS) + 1
    if not n:
        return [pa.array([], pa.string()) for _ in CANDLE_VALUE_FIELDS], np.zeros(0, bool)
    columns: list[list[pa.Array]] = []
    parts: list[np.ndarray] = []
    for hist in (False, True):
        rows = np.flatnonzero(historical == hist)
        if not len(rows):
            continue
        part = array if len(rows) == n else array.take(pa.array(rows))
        table = _read(part, hist)
        if table is None:
            return None
        columns.append(_value_columns(table, hist))
        parts.append(rows)
    if len(columns) == 1:
        merged = columns[0]
    else:
        # Live and historical rows were read apart (their schemas differ); put them back in row order.
        back = np.empty(n, dtype=np.int64)
        back[np.concatenate(parts)] = np.arange(n)
        indices = pa.array(back)
        merged = [pa.concat_arrays([c[j] for c in columns]).take(indices) for j in range(width)]
    values = merged[:-1]
    plain = merged[-1].is_valid()
    for count in values[-2:]:
        plain = _call("and", [plain, count.is_valid()])
    return values, np.asarray(plain.to_numpy(zero_copy_only=False), dtype=bool)
