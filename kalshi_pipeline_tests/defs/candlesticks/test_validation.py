"""Unit tests of the pandera candle validation: each bad row is rejected with its reason."""

import random
from decimal import Decimal as D
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pytest

from kalshi_pipeline.defs.candlesticks.validation import RULES, STORABLE_REASON, validate_candles
from kalshi_pipeline.warehouse.schema import (
    CANDLE_COUNT_COLUMNS,
    CANDLE_PRICE_COLUMNS,
    CANDLESTICKS,
)

TICKERS = {"KXNBAGAME-25DEC19SASATL-ATL", "KXNBAGAME-25DEC19SASATL-SAS"}
BASE_TS = 1766188800  # 2025-12-20T00:00:00Z, a multiple of 60


def candle(**overrides: Any) -> dict[str, Any]:
    """A valid candle row; overrides make it bad in one way."""
    row: dict[str, Any] = dict.fromkeys(CANDLESTICKS.column_names)
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
    return pd.DataFrame(list(rows), columns=CANDLESTICKS.column_names)


def test_valid_rows_pass_including_no_trade_candles() -> None:
    no_trade = candle(
        end_period_ts=BASE_TS + 60,
        **{
            c: None
            for c in CANDLE_PRICE_COLUMNS
            if c.startswith("price_") and c != "price_previous"
        },
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
    assert reason in rejected["reasons"].iloc[0].split("; ")


@pytest.mark.parametrize(
    ("overrides", "unfit"),
    [
        ({"volume": D("0.0000001")}, "volume"),
        ({"price_close": D("0.5800001"), "price_high": D("0.61")}, "price_close"),
        ({"open_interest": D("1E+19")}, "open_interest"),
    ],
)
def test_value_its_column_cannot_hold_is_rejected_and_left_out_of_the_reject(
    overrides: dict[str, Any], unfit: str
) -> None:
    # Six decimals (the warehouse's scale) and a trailing zero beyond them fit exactly.
    fits = candle(end_period_ts=BASE_TS - 60, volume=D("0.0000010"), price_close=D("0.580000"))
    valid, rejected = validate_candles(frame(fits, candle(**overrides)), TICKERS)
    assert len(valid) == 1 and valid.loc[0, "volume"] == D("0.000001")
    assert rejected["reasons"].tolist() == [STORABLE_REASON]
    assert rejected.loc[0, unfit] is None
    assert rejected.loc[0, "price_open"] == D("0.55")  # the other values are kept


def test_duplicate_keeps_first_and_rejects_the_rest() -> None:
    first = candle()
    second = candle(price_close=D("0.59"))
    valid, rejected = validate_candles(frame(first, second), TICKERS)
    assert len(valid) == 1 and valid.loc[0, "price_close"] == D("0.58")
    assert rejected.loc[0, "reasons"] == "duplicate (ticker, period_interval, end_period_ts)"


def test_several_reasons_are_joined() -> None:
    bad = candle(price_high=D("1.5"), volume=D("-2"))
    _, rejected = validate_candles(frame(bad), TICKERS)
    reasons = rejected["reasons"].iloc[0].split("; ")
    assert "price outside [0, 1]" in reasons
    assert "volume missing or negative" in reasons


def test_float_prices_are_rejected() -> None:
    _, rejected = validate_candles(frame(candle(price_open=0.55)), TICKERS)
    assert "price not a finite decimal" in rejected["reasons"].iloc[0]


def test_empty_frame() -> None:
    valid, rejected = validate_candles(frame(), TICKERS)
    assert valid.empty and rejected.empty
    assert "reasons" in rejected.columns


# ----------------------------------------------------------------------------------------------------
# The columnar checks against the rule definitions applied row by row (the original implementation).


def _reference_validate(df: pd.DataFrame, allowed: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pre-vectorization validator: every rule row by row through pandera, default null handling."""
    from kalshi_pipeline.defs.candlesticks import validation as v

    checks = [
        pa.Check(v._rowwise(CANDLE_PRICE_COLUMNS, v._is_decimal_or_none), name=v.RULES[0]),
        pa.Check(v._rowwise(CANDLE_PRICE_COLUMNS, v._in_unit_interval), name=v.RULES[1]),
    ]
    for group in v.OHLC_GROUPS:
        cols = [f"{group}_open", f"{group}_high", f"{group}_low", f"{group}_close"]
        checks.append(
            pa.Check(
                v._rowwise(cols, v._ohlc_consistent), name=f"{group} low <= open, close <= high"
            )
        )
    checks += [
        pa.Check(v._rowwise(["yes_bid_open", "yes_ask_open"], v._le), name=v.RULES[5]),
        pa.Check(v._rowwise(["yes_bid_close", "yes_ask_close"], v._le), name=v.RULES[6]),
        pa.Check(v._rowwise(["volume"], v._non_negative_count), name=v.RULES[7]),
        pa.Check(v._rowwise(["open_interest"], v._non_negative_count), name=v.RULES[8]),
        pa.Check(v._rowwise(["end_period_ts", "period_interval"], v._aligned), name=v.RULES[9]),
        pa.Check(v._rowwise(["ticker"], lambda t: t in allowed), name=v.RULES[10]),
        pa.Check(
            v._rowwise(
                list(v._STORABLE),
                lambda *values: all(
                    fits(x) for fits, x in zip(v._STORABLE.values(), values, strict=True)
                ),
            ),
            name=v.STORABLE_REASON,
        ),
    ]
    schema = pa.DataFrameSchema(
        columns={
            "ticker": pa.Column(nullable=False),
            "period_interval": pa.Column("int64", nullable=False),
            "end_period_ts": pa.Column("int64", nullable=False),
            **{
                c: pa.Column(object, nullable=True)
                for c in [*CANDLE_PRICE_COLUMNS, *CANDLE_COUNT_COLUMNS]
            },
        },
        checks=checks,
        unique=list(CANDLESTICKS.primary_key),
        report_duplicates="exclude_first",
        strict=False,
    )
    frame = df.reset_index(drop=True).copy()
    frame["period_interval"] = frame["period_interval"].astype("int64")
    frame["end_period_ts"] = frame["end_period_ts"].astype("int64")
    for col in (*CANDLE_PRICE_COLUMNS, *CANDLE_COUNT_COLUMNS):
        frame[col] = pd.Series(
            [None if isinstance(x, float) and x != x else x for x in frame[col].tolist()],
            index=frame.index,
            dtype=object,
        )
    reasons: dict[int, set[str]] = {}
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        for check, index in zip(
            exc.failure_cases["check"], exc.failure_cases["index"], strict=True
        ):
            label = v.DUPLICATE_REASON if check == "multiple_fields_uniqueness" else str(check)
            rows = range(len(frame)) if index is None or pd.isna(index) else [int(index)]
            for row in rows:
                reasons.setdefault(row, set()).add(label)
    bad = sorted(reasons)
    rejected = v._storable_values(frame.loc[bad].reset_index(drop=True))
    rejected["reasons"] = pd.Series([reasons[i] for i in bad], dtype=object)
    return frame.drop(index=bad).reset_index(drop=True), rejected


PRICES = [D(x) for x in ("0", "0.00", "-0", "0.01", "0.5", "0.50", "0.5000", "0.99", "1", "1.0000")]
PRICES += [D(x) for x in ("1.0001", "-0.0001", "0.123456", "2", "-1", "0E-10", "0.9999999999")]
ODD = [0.5, float("nan"), 1, True, "0.5", pd.NA, D("NaN"), D("Infinity"), D("-Infinity")]


def _random_frame(rng: random.Random, rows: int, odd: bool) -> pd.DataFrame:
    """Random candles: mostly valid decimals, some out of range, out of order, or (odd) not decimals."""

    def price() -> Any:
        roll = rng.random()
        if odd and roll < 0.03:
            return rng.choice(ODD)
        return None if roll < 0.3 else rng.choice(PRICES)

    def count() -> Any:
        roll = rng.random()
        if odd and roll < 0.03:
            return rng.choice(ODD)
        if roll < 0.05:
            return None
        return rng.choice([D("0"), D("0.00"), D("12.50"), D("-1"), D("1e3"), D("99999999.99")])

    tickers = [*sorted(TICKERS), "KXNBAGAME-25DEC19LALBOS-BOS"]
    out = []
    for _ in range(rows):
        row = candle(
            ticker=rng.choice(tickers),
            period_interval=rng.choice([1, 1, 1, 60, 5, 1440]),
            end_period_ts=BASE_TS + 60 * rng.randrange(0, 40) + rng.choice([0, 0, 0, 0, 30]),
            volume=count(),
            open_interest=count(),
        )
        for c in CANDLE_PRICE_COLUMNS:
            if rng.random() < 0.6:
                row[c] = price()
        out.append(row)
    return frame(*out)


@pytest.mark.parametrize("seed", range(40))
def test_columnar_checks_reject_exactly_what_the_row_rules_reject(seed: int) -> None:
    rng = random.Random(seed)
    df = _random_frame(rng, rows=rng.choice([1, 7, 60, 300]), odd=seed % 3 == 0)
    valid, rejected = validate_candles(df, TICKERS)
    ref_valid, ref_rejected = _reference_validate(df, TICKERS)
    pd.testing.assert_frame_equal(valid, ref_valid)
    pd.testing.assert_frame_equal(
        rejected.drop(columns=["reasons"]), ref_rejected.drop(columns=["reasons"])
    )
    got = [r.split("; ") for r in rejected["reasons"]]
    assert [set(r) for r in got] == list(ref_rejected["reasons"])
    rank = {name: i for i, name in enumerate(RULES)}
    assert all(r == sorted(r, key=lambda x: rank.get(x, len(RULES))) for r in got)


def test_signalling_nan_fails_the_rule_that_cannot_compare_it() -> None:
    # The parser never produces one (non-finite values are unparseable). A comparison with a signalling
    # NaN raises, so the range rule fails every row, as before; the row rules decide the rest (before,
    # pandera's own null scan raised too and every rule was reported for every row).
    df = frame(candle(), candle(end_period_ts=BASE_TS + 60, price_mean=D("sNaN")))
    valid, rejected = validate_candles(df, TICKERS)
    ref_valid, ref_rejected = _reference_validate(df, TICKERS)
    assert valid.empty and ref_valid.empty and len(rejected) == len(ref_rejected) == 2
    assert rejected["reasons"].tolist() == [
        "price outside [0, 1]",
        "price not a finite decimal; price outside [0, 1]",
    ]


def test_reasons_follow_rule_order_whatever_else_fails() -> None:
    bad = candle(price_high=D("1.5"), volume=D("-2"), yes_bid_close=D("0.65"))
    expected = (
        "price outside [0, 1]; yes_bid low <= open, close <= high; "
        "yes_bid_close > yes_ask_close; volume missing or negative"
    )
    for others in (0, 1, 3, 10, 30):
        rows = [bad] + [
            candle(end_period_ts=BASE_TS + 60 * (i + 1), open_interest=D("-1"))
            for i in range(others)
        ]
        _, rejected = validate_candles(frame(*rows), TICKERS)
        assert rejected.loc[0, "reasons"] == expected
