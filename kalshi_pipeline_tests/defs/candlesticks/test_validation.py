"""Unit tests of the pandera candle validation: each bad row is rejected with its reason."""

from decimal import Decimal as D
from typing import Any

import pandas as pd
import pytest

from kalshi_pipeline.defs.candlesticks.validation import (
    CANDLE_COLUMNS,
    PRICE_COLUMNS,
    validate_candles,
)

TICKERS = {"KXNBAGAME-25DEC19SASATL-ATL", "KXNBAGAME-25DEC19SASATL-SAS"}
BASE_TS = 1766188800  # 2025-12-20T00:00:00Z, a multiple of 60


def candle(**overrides: Any) -> dict[str, Any]:
    """A valid candle row; overrides make it bad in one way."""
    row: dict[str, Any] = dict.fromkeys(CANDLE_COLUMNS)
    row.update(
        ticker="KXNBAGAME-25DEC19SASATL-ATL",
        event_ticker="KXNBAGAME-25DEC19SASATL",
        series_ticker="KXNBAGAME",
        period_interval=1,
        end_period_ts=BASE_TS,
        price_open=D("0.55"),
        price_high=D("0.60"),
        price_low=D("0.50"),
        price_close=D("0.58"),
        price_mean=D("0.56"),
        price_previous=D("0.54"),
        yes_bid_open=D("0.54"),
        yes_bid_high=D("0.58"),
        yes_bid_low=D("0.50"),
        yes_bid_close=D("0.57"),
        yes_ask_open=D("0.56"),
        yes_ask_high=D("0.60"),
        yes_ask_low=D("0.52"),
        yes_ask_close=D("0.59"),
        volume=D("10.00"),
        open_interest=D("100.00"),
        source="live",
    )
    row.update(overrides)
    return row


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=CANDLE_COLUMNS)


def test_valid_rows_pass_including_no_trade_candles() -> None:
    no_trade = candle(
        end_period_ts=BASE_TS + 60,
        **{c: None for c in PRICE_COLUMNS if c.startswith("price_") and c != "price_previous"},
        volume=D("0.00"),
    )
    valid, rejected = validate_candles(frame(candle(), no_trade), TICKERS)
    assert len(valid) == 2
    assert rejected.empty
    assert valid.loc[0, "price_close"] == D("0.58")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"price_high": D("1.20")}, "price outside [0, 1]"),
        ({"yes_ask_close": D("-0.01")}, "price outside [0, 1]"),
        ({"price_low": D("0.57")}, "price low <= open, close <= high"),
        ({"yes_bid_close": D("0.61"), "yes_bid_high": D("0.62")}, "yes_bid_close > yes_ask_close"),
        ({"yes_bid_open": D("0.57")}, "yes_bid_open > yes_ask_open"),
        ({"end_period_ts": BASE_TS + 30}, "end_period_ts not aligned to period_interval"),
        ({"ticker": "KXNBAGAME-25DEC19LALBOS-BOS"}, "ticker not in partition's games"),
        ({"volume": D("-1")}, "volume missing or negative"),
        ({"open_interest": D("-5")}, "open_interest missing or negative"),
        ({"period_interval": 5}, "end_period_ts not aligned to period_interval"),
    ],
)
def test_bad_row_is_rejected_with_reason(overrides: dict[str, Any], reason: str) -> None:
    good = candle(end_period_ts=BASE_TS - 60)
    valid, rejected = validate_candles(frame(good, candle(**overrides)), TICKERS)
    assert len(valid) == 1
    assert valid.loc[0, "end_period_ts"] == BASE_TS - 60
    assert len(rejected) == 1
    assert reason in rejected.loc[0, "reasons"].split("; ")


def test_duplicate_keeps_first_and_rejects_the_rest() -> None:
    first = candle()
    second = candle(price_close=D("0.59"))
    valid, rejected = validate_candles(frame(first, second), TICKERS)
    assert len(valid) == 1 and valid.loc[0, "price_close"] == D("0.58")
    assert rejected.loc[0, "reasons"] == "duplicate (ticker, period_interval, end_period_ts)"


def test_several_reasons_are_joined() -> None:
    bad = candle(price_high=D("1.5"), volume=D("-2"))
    _, rejected = validate_candles(frame(bad), TICKERS)
    reasons = rejected.loc[0, "reasons"].split("; ")
    assert "price outside [0, 1]" in reasons
    assert "volume missing or negative" in reasons


def test_float_prices_are_rejected() -> None:
    _, rejected = validate_candles(frame(candle(price_open=0.55)), TICKERS)
    assert "price not a finite decimal" in rejected.loc[0, "reasons"]


def test_empty_frame() -> None:
    valid, rejected = validate_candles(frame(), TICKERS)
    assert valid.empty and rejected.empty
    assert "reasons" in rejected.columns
