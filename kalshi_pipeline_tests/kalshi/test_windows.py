"""The request windows of the candlestick endpoints, called directly (no client, no exchange).

`test_client.py` checks that `candle_windows` covers a window without gaps or overlaps; here: its refusals,
the batch plan under Kalshi's caps, the Unix-seconds guard and the merge of overlapping answers.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from kalshi_pipeline.kalshi.candles import Candlestick
from kalshi_pipeline.kalshi.windows import (
    BATCH_MAX_CANDLES,
    BATCH_MAX_TICKERS,
    SINGLE_MAX_CANDLES,
    batch_plan,
    candle_windows,
    check_unix_seconds,
    sorted_unique,
)

DAY = 86_400


def candle(end: int, volume: str) -> Candlestick:
    payload = {
        "end_period_ts": end,
        "volume_fp": volume,
        "open_interest_fp": "1.00",
        "price": {},
        "yes_bid": {},
        "yes_ask": {},
    }
    return Candlestick.from_payload(payload, ticker="T", period_interval=1, historical=False)


def test_candle_windows_refuse_bad_arguments_and_keep_a_single_instant() -> None:
    with pytest.raises(ValueError, match="max_periods must be >= 1"):
        candle_windows(0, 60, 1, 0)
    with pytest.raises(ValueError, match="end_ts 0 is before start_ts 60"):
        candle_windows(60, 0, 1, 10)
    assert candle_windows(60, 60, 1, 1) == [(60, 60)]
    # Two periods per window: each spans one minute, so it holds two minute ends whatever the alignment.
    assert candle_windows(0, 180, 1, 2) == [(0, 60), (61, 121), (122, 180)]


def test_a_small_batch_is_one_request() -> None:
    groups, windows = batch_plan(["A", "B"], 0, 3600, 1)
    assert groups == [["A", "B"]] and windows == [(0, 3600)]


@pytest.mark.parametrize(
    ("tickers", "days", "period"),
    [
        (
            250,
            1,
            1,
        ),  # many markets, one day of minutes: groups under 100 tickers and 10,000 candles
        (2, 10, 1),  # a long window of minutes: split under 5,000 candles per market
        (30, 400, 60),  # a season of hours
        (3, 2000, 1440),  # years of days
    ],
)
def test_every_request_of_a_batch_plan_stays_under_the_caps(
    tickers: int, days: int, period: int
) -> None:
    names = [f"M{i:03d}" for i in range(tickers)]
    start, end = 17, 17 + days * DAY
    groups, windows = batch_plan(names, start, end, period)
    assert list(itertools.chain.from_iterable(groups)) == names
    assert windows[0][0] == start and windows[-1][1] == end
    step = period * 60
    for lo, hi in windows:
        periods = -(-(hi - lo) // step) + 1
        assert periods <= SINGLE_MAX_CANDLES
        for group in groups:
            assert len(group) <= BATCH_MAX_TICKERS
            assert len(group) * periods <= BATCH_MAX_CANDLES


def test_unix_seconds_are_checked() -> None:
    assert check_unix_seconds("start_ts", 1_766_190_600) == 1_766_190_600
    with pytest.raises(ValueError, match="start_ts=1766190600000 looks like milliseconds"):
        check_unix_seconds("start_ts", 1_766_190_600_000)
    for bad in (True, 1.5, "1766190600", None):
        with pytest.raises(TypeError, match="end_ts must be Unix seconds"):
            check_unix_seconds("end_ts", bad)  # type: ignore[arg-type]  # the refusal is the point


def test_sorted_unique_orders_by_end_and_the_last_answer_wins() -> None:
    merged = sorted_unique([candle(180, "1"), candle(60, "2"), candle(180, "3"), candle(120, "4")])
    assert [(c.end_period_ts, c.volume) for c in merged] == [
        (60, Decimal("2")),
        (120, Decimal("4")),
        (180, Decimal("3")),
    ]
    assert sorted_unique([]) == []
