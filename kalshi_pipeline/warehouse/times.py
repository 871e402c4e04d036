"""The one converter between Unix seconds and the tz-aware UTC times the warehouse stores and returns.

Kalshi and the candle windows count time in Unix seconds; the warehouse writes and reads `timestamptz`
columns as tz-aware UTC (`pandas.Timestamp` in frames). Naive datetimes are refused everywhere: their zone
would be a guess.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from kalshi_pipeline.warehouse.errors import WarehouseDataError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SECOND = dt.timedelta(seconds=1)
_NS_PER_S = 1_000_000_000


def to_utc(value: int | dt.datetime, what: str) -> dt.datetime:
    """Convert Unix seconds or a tz-aware datetime to a UTC datetime (naive datetimes are refused)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise WarehouseDataError(f"{what} must be tz-aware (UTC), got naive {value!r}")
        return value.astimezone(dt.UTC)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WarehouseDataError(
            f"{what} must be Unix seconds (int) or a tz-aware datetime, got {value!r}"
        )
    return dt.datetime.fromtimestamp(value, dt.UTC)


def unix_seconds(value: object) -> int | None:
    """Unix seconds (floored) of a stored time; None for a missing one (None, NaT, NaN).

    Accepts what a frame read from the warehouse holds: tz-aware `Timestamp`s and datetimes, or numbers
    already in Unix seconds. Anything else, naive datetimes included, raises `WarehouseDataError`.
    """
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        raise WarehouseDataError(f"expected a time, got the boolean {value!r}")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else math.floor(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise WarehouseDataError(f"expected a tz-aware time, got naive {value!r}")
        return (value - _EPOCH) // _SECOND
    raise WarehouseDataError(
        f"expected a tz-aware time or Unix seconds, got {type(value).__name__} {value!r}"
    )


def unix_seconds_column(series: pd.Series) -> list[int]:
    """Unix seconds of every value of a column of times (none may be missing), in row order.

    A tz-aware datetime column of whole seconds (what the warehouse returns for candle times) converts in
    one vectorized step; integer columns are taken as Unix seconds already.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) and not series.isna().any():
        ns = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        ns = ns.astype(np.int64)
        if not (ns % _NS_PER_S).any():
            return (ns // _NS_PER_S).tolist()
    if pd.api.types.is_integer_dtype(dtype):
        return [int(v) for v in series.tolist()]
    out: list[int] = []
    for v in series.tolist():
        seconds = unix_seconds(v)
        if seconds is None:
            raise WarehouseDataError(f"column {series.name!r} has a missing time")
        out.append(seconds)
    return out
