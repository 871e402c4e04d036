"""The one converter between Unix seconds and stored times."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from kalshi_pipeline.warehouse import WarehouseDataError, to_utc, unix_seconds, unix_seconds_column

T0 = 1766188800  # 2025-12-20 00:00:00 UTC


def test_to_utc_takes_unix_seconds_and_aware_datetimes_only() -> None:
    assert to_utc(T0, "t") == dt.datetime(2025, 12, 20, tzinfo=dt.UTC)
    eastern = dt.datetime(2025, 12, 19, 19, tzinfo=ZoneInfo("America/New_York"))
    assert to_utc(eastern, "t") == dt.datetime(2025, 12, 20, tzinfo=dt.UTC)
    assert to_utc(eastern, "t").tzinfo == dt.UTC
    with pytest.raises(WarehouseDataError, match="start must be tz-aware"):
        to_utc(dt.datetime(2025, 12, 20), "start")
    with pytest.raises(WarehouseDataError, match="Unix seconds"):
        to_utc(True, "t")
    with pytest.raises(WarehouseDataError, match="Unix seconds"):
        to_utc(1.5, "t")  # type: ignore[arg-type]  # the mistake under test


def test_unix_seconds_of_stored_values() -> None:
    assert unix_seconds(pd.Timestamp(T0, unit="s", tz="UTC")) == T0
    assert unix_seconds(pd.Timestamp("2025-12-19 19:00", tz="America/New_York")) == T0
    assert unix_seconds(dt.datetime(2025, 12, 20, 0, 0, 59, 999999, tzinfo=dt.UTC)) == T0 + 59
    assert unix_seconds(T0) == T0 and unix_seconds(np.int64(T0)) == T0
    assert unix_seconds(float(T0) + 0.9) == T0
    for missing in (None, pd.NaT, float("nan"), np.float64("nan")):
        assert unix_seconds(missing) is None
    with pytest.raises(WarehouseDataError, match="naive"):
        unix_seconds(pd.Timestamp("2025-12-20"))
    with pytest.raises(WarehouseDataError, match="boolean"):
        unix_seconds(True)
    with pytest.raises(WarehouseDataError, match="str"):
        unix_seconds("2025-12-20T00:00:00Z")


def test_unix_seconds_column_fast_and_general_paths_agree() -> None:
    stamps = pd.Series(pd.to_datetime([T0, T0 + 60, T0 + 120], unit="s", utc=True))
    assert unix_seconds_column(stamps) == [T0, T0 + 60, T0 + 120]
    assert unix_seconds_column(stamps.dt.as_unit("us")) == [T0, T0 + 60, T0 + 120]
    fractional = pd.Series(pd.to_datetime([T0 * 1000 + 500], unit="ms", utc=True))
    assert unix_seconds_column(fractional) == [T0]
    assert unix_seconds_column(stamps.astype(object)) == [T0, T0 + 60, T0 + 120]
    assert unix_seconds_column(pd.Series([T0, T0 + 60], dtype="int64")) == [T0, T0 + 60]
    assert unix_seconds_column(pd.Series([], dtype="datetime64[us, UTC]")) == []
    assert unix_seconds_column(pd.Series([], dtype=object)) == []
    with pytest.raises(WarehouseDataError, match="missing time"):
        unix_seconds_column(pd.Series([pd.Timestamp(T0, unit="s", tz="UTC"), pd.NaT]))
    with pytest.raises(WarehouseDataError, match="naive"):
        unix_seconds_column(pd.Series(pd.to_datetime([T0], unit="s")))
