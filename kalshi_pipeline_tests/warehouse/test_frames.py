"""DataFrame validation: exact decimals, time zones, dates, JSON, primary-key de-duplication."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from kalshi_pipeline.warehouse import WarehouseDataError
from kalshi_pipeline.warehouse.frames import prepare_frame
from kalshi_pipeline.warehouse.schema import CANDLESTICKS, CANDLESTICKS_RAW, MARKETS
from kalshi_pipeline_tests.warehouse.builders import T0, candle_rows, market_rows, raw_candle_rows


def test_decimals_become_canonical_fixed_point_text() -> None:
    rows = candle_rows(n=6)
    rows["price_close"] = pd.Series(
        [
            Decimal("0.9870"),
            Decimal("5E-4"),
            "12.34",
            7,
            None,
            Decimal("0.1000000"),
        ],
        dtype=object,
    )
    prepared = prepare_frame(CANDLESTICKS, rows)
    assert list(prepared.frame["price_close"]) == [
        "0.9870",
        "0.0005",
        "12.34",
        "7",
        None,
        "0.100000",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.1, "float"),
        (np.float64(0.5), "float"),
        (Decimal("Infinity"), "non-finite"),
        ("abc", "non-numeric string"),
        (Decimal("0.0000001"), "more than 6 fractional digits"),
        (Decimal("1000000000000"), "exceeds the column range"),
        (True, "bool"),
        (dt.date(2025, 1, 1), "expected decimal.Decimal"),
    ],
)
def test_inexact_or_invalid_decimals_are_refused(value: object, message: str) -> None:
    rows = candle_rows(n=2)
    rows["price_close"] = pd.Series([Decimal("0.5"), value], dtype=object)
    with pytest.raises(WarehouseDataError, match=message) as info:
        prepare_frame(CANDLESTICKS, rows)
    assert "candlesticks.price_close" in str(info.value)


def test_missing_values_are_null() -> None:
    rows = candle_rows(n=2)
    rows["price_mean"] = np.nan
    rows["price_low"] = pd.Series([pd.NA, Decimal("NaN")], dtype=object)
    prepared = prepare_frame(CANDLESTICKS, rows).frame
    assert list(prepared["price_mean"]) == [None, None]
    assert list(prepared["price_low"]) == [None, None]


def test_timestamps_convert_to_utc_from_zones_and_unix_seconds() -> None:
    rows = candle_rows(n=2)
    rows["end_period_ts"] = pd.to_datetime([T0, T0 + 60], unit="s", utc=True).tz_convert(
        "America/New_York"
    )
    out = prepare_frame(CANDLESTICKS, rows).frame["end_period_ts"]
    assert str(out.dt.tz) == "UTC"
    assert list(out.astype("int64") // 10**6) == [T0, T0 + 60]
    rows["end_period_ts"] = [T0, T0 + 60]
    assert list(
        prepare_frame(CANDLESTICKS, rows).frame["end_period_ts"].astype("int64") // 10**6
    ) == [T0, T0 + 60]
    rows["end_period_ts"] = pd.Series([dt.datetime(2025, 12, 20), None], dtype=object)
    with pytest.raises(WarehouseDataError, match="naive datetime"):
        prepare_frame(CANDLESTICKS, rows)
    rows["end_period_ts"] = ["2025-12-20", "x"]
    with pytest.raises(WarehouseDataError, match="expected a tz-aware datetime or Unix seconds"):
        prepare_frame(CANDLESTICKS, rows)


def test_dates_accept_dates_and_iso_strings_only() -> None:
    rows = market_rows()
    rows["game_date"] = [dt.date(2025, 12, 19), "2025-12-20"]
    assert list(prepare_frame(MARKETS, rows).frame["game_date"]) == ["2025-12-19", "2025-12-20"]
    rows["game_date"] = pd.to_datetime(["2025-12-19", "2025-12-20"])
    assert list(prepare_frame(MARKETS, rows).frame["game_date"]) == ["2025-12-19", "2025-12-20"]
    for bad, message in (
        ([dt.datetime(2025, 12, 19, 1), None], "time of day"),
        (pd.Series([dt.datetime(2025, 12, 19), "x"], dtype=object), "holds datetime"),
        (["19/12/2025", None], "YYYY-MM-DD"),
        (pd.to_datetime(["2025-12-19", "2025-12-20"], utc=True), "tz-aware"),
    ):
        rows["game_date"] = bad
        with pytest.raises(WarehouseDataError, match=message):
            prepare_frame(MARKETS, rows)


def test_text_and_json_columns() -> None:
    rows = raw_candle_rows(n=2)
    rows["payload"] = pd.Series(['{"a": 1}', {"b": [1, 2]}], dtype=object)
    assert list(prepare_frame(CANDLESTICKS_RAW, rows).frame["payload"]) == [
        '{"a": 1}',
        '{"b": [1, 2]}',
    ]
    rows["source"] = [1, "live"]
    with pytest.raises(
        WarehouseDataError, match=r"candlesticks_raw.source holds int value 1; expected str"
    ):
        prepare_frame(CANDLESTICKS_RAW, rows)


def test_repeated_primary_keys_keep_the_last_row() -> None:
    rows = pd.concat([candle_rows(n=3), candle_rows(n=1, close=Decimal("0.9"))], ignore_index=True)
    prepared = prepare_frame(CANDLESTICKS, rows)
    assert (prepared.input_rows, prepared.rows) == (4, 3)
    assert list(prepared.frame["price_close"]) == ["0.5000", "0.5000", "0.9"]
    assert list(prepared.frame["end_period_ts"].astype("int64") // 10**6) == [T0 + 60, T0 + 120, T0]


def test_non_integer_period_interval_and_duplicate_columns_are_refused() -> None:
    rows = candle_rows(n=1)
    with pytest.raises(WarehouseDataError, match="period_interval must hold integers"):
        prepare_frame(CANDLESTICKS, rows.assign(period_interval=[1.5]))
    dup = pd.concat([rows, rows[["ticker"]]], axis=1)
    with pytest.raises(WarehouseDataError, match=r"duplicate columns \['ticker'\]"):
        prepare_frame(CANDLESTICKS, dup)
    with pytest.raises(WarehouseDataError, match="needs a pandas DataFrame"):
        prepare_frame(CANDLESTICKS, rows.to_dict("records"))  # type: ignore[arg-type]
