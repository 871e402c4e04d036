"""The field parsers shared by REST models and WebSocket messages: fixed-point strings and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from kalshi_pipeline.kalshi.errors import KalshiProtocolError
from kalshi_pipeline.kalshi.parsing import Fields, parse_fixed, parse_timestamp, unix_ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.5600", Decimal("0.5600")),
        (" 1200.50 ", Decimal("1200.50")),
        ("-54.00", Decimal("-54.00")),
    ],
)
def test_fixed_point_strings_are_exact(text: str, expected: Decimal) -> None:
    value = parse_fixed(text, "price_dollars", "market 'M'")
    assert value == expected and str(value) == str(expected)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (56, "should be a fixed-point string, got 56"),
        (0.56, "should be a fixed-point string, got 0.56"),
        (True, "should be a fixed-point string, got True"),
        ("fifty cents", "is not a decimal number"),
        ("", "is not a decimal number"),
        ("NaN", "is not finite"),
        ("Infinity", "is not finite"),
    ],
)
def test_anything_but_a_finite_fixed_point_string_is_refused(value: Any, problem: str) -> None:
    with pytest.raises(KalshiProtocolError) as err:
        parse_fixed(value, "price_dollars", "ticker frame 'M'")
    assert str(err.value).startswith("ticker frame 'M': field 'price_dollars' ")
    assert problem in str(err.value)


def test_timestamps_convert_to_exact_unix_milliseconds() -> None:
    moment = parse_timestamp("2026-07-19T15:45:00.544125Z")
    assert moment == datetime(2026, 7, 19, 15, 45, 0, 544125, tzinfo=UTC)
    assert unix_ms(moment) == 1784475900544
    assert unix_ms(parse_timestamp("2026-07-19T11:45:00.001-04:00")) == 1784475900001
    assert unix_ms(parse_timestamp("1970-01-01T00:00:00Z")) == 0
    # Float arithmetic would round some of these down by one millisecond; the conversion is exact.
    for ms in range(1784475900000, 1784475901000):
        assert (
            unix_ms(datetime.fromtimestamp(ms / 1000, UTC).replace(microsecond=ms % 1000 * 1000))
            == ms
        )
    with pytest.raises(KalshiProtocolError, match="RFC3339"):
        parse_timestamp("tomorrow", "close_time", "market 'M'")


def test_fields_name_the_object_and_the_field() -> None:
    fields = Fields.named({"ticker": "M", "volume_fp": "1.00", "status": None}, "market", "ticker")
    assert fields.where == "market 'M'"
    assert fields.fixed("volume_fp") == Decimal("1.00") and fields.fixed("absent_fp") is None
    with pytest.raises(KalshiProtocolError, match=r"market 'M': required field 'status' is null"):
        fields.required_text("status")
    with pytest.raises(KalshiProtocolError, match=r"required field 'event_ticker' is missing"):
        fields.required_text("event_ticker")
    with pytest.raises(KalshiProtocolError, match="expected a JSON object, got list"):
        Fields([], "market")
