"""The candlestick endpoints over a real socket: consistency across periods, batches, events, errors."""

from __future__ import annotations

import itertools
import time
from decimal import Decimal

import httpx

from kalshi_pipeline_tests.simulator.rest.helpers import (
    assert_error,
    get_ok,
    ts,
    whole_history,
)


def test_candles_agree_with_market_and_each_other(api: httpx.Client) -> None:
    market = get_ok(api, "/markets", status="settled", limit=1)["markets"][0]
    minutes = whole_history(api, market, 1)
    hours = whole_history(api, market, 60)
    assert minutes and hours
    ends = [c["end_period_ts"] for c in minutes]
    assert ends == sorted(ends) and len(set(ends)) == len(ends)
    assert all(e % 60 == 0 for e in ends)
    assert sum(Decimal(c["volume_fp"]) for c in minutes) == Decimal(market["volume_fp"])
    assert minutes[-1]["open_interest_fp"] == market["open_interest_fp"]
    for candle in minutes:
        assert set(candle) == {
            "end_period_ts",
            "yes_bid",
            "yes_ask",
            "price",
            "volume_fp",
            "open_interest_fp",
        }
        if candle["volume_fp"] == "0.00":
            assert set(candle["price"]) <= {"previous_dollars"}
        else:
            price = candle["price"]
            assert (
                Decimal(price["low_dollars"])
                <= Decimal(price["mean_dollars"])
                <= Decimal(price["high_dollars"])
            )
        for side in ("yes_bid", "yes_ask"):
            q = {k: Decimal(v) for k, v in candle[side].items()}
            assert q["low_dollars"] <= min(q["open_dollars"], q["close_dollars"])
            assert q["high_dollars"] >= max(q["open_dollars"], q["close_dollars"])
    never_traded = [c for c in minutes if c["price"] == {}]
    assert not never_traded or never_traded[0] is minutes[0]
    # Hourly candles agree with their minutes.
    for hour in hours:
        inside = [
            c
            for c in minutes
            if hour["end_period_ts"] - 3600 < c["end_period_ts"] <= hour["end_period_ts"]
        ]
        assert inside
        assert sum(Decimal(c["volume_fp"]) for c in inside) == Decimal(hour["volume_fp"])
        for side in ("yes_bid", "yes_ask"):
            assert hour[side]["open_dollars"] == inside[0][side]["open_dollars"]
            assert hour[side]["close_dollars"] == inside[-1][side]["close_dollars"]
            assert hour[side]["high_dollars"] == max(
                (c[side]["high_dollars"] for c in inside), key=Decimal
            )
            assert hour[side]["low_dollars"] == min(
                (c[side]["low_dollars"] for c in inside), key=Decimal
            )
        traded = [c for c in inside if c["volume_fp"] != "0.00"]
        if traded:
            assert hour["price"]["open_dollars"] == traded[0]["price"]["open_dollars"]
            assert hour["price"]["close_dollars"] == traded[-1]["price"]["close_dollars"]
            assert hour["price"]["high_dollars"] == max(
                (c["price"]["high_dollars"] for c in traded), key=Decimal
            )
        assert hour["open_interest_fp"] == inside[-1]["open_interest_fp"]
    # Late-game prices use the deci-cent tails of the grid.
    late = {c["yes_bid"]["close_dollars"] for c in minutes[-40:]}
    assert any(Decimal(p) >= Decimal("0.9") or Decimal(p) < Decimal("0.1") for p in late)


def test_candle_errors(api: httpx.Client) -> None:
    market = get_ok(api, "/markets", status="open", limit=1)["markets"][0]
    path = f"/series/KXNBAGAME/markets/{market['ticker']}/candlesticks"
    now = int(time.time())
    assert_error(
        api.get(path, params={"start_ts": now - 600, "end_ts": now, "period_interval": 5}),
        400,
        "bad_request",
    )
    assert_error(api.get(path, params={"end_ts": now, "period_interval": 1}), 400, "bad_request")
    assert_error(
        api.get(path, params={"start_ts": now - 5001 * 60, "end_ts": now, "period_interval": 1}),
        400,
        "bad_request",
    )
    ok = api.get(path, params={"start_ts": now - 4999 * 60, "end_ts": now, "period_interval": 1})
    assert ok.status_code == 200
    wrong_series = f"/series/KXNHLGAME/markets/{market['ticker']}/candlesticks"
    assert (
        api.get(
            wrong_series, params={"start_ts": now - 600, "end_ts": now, "period_interval": 1}
        ).status_code
        == 400
    )
    tickers = [m["ticker"] for m in get_ok(api, "/markets", limit=101)["markets"]]
    assert_error(
        api.get(
            "/markets/candlesticks",
            params={
                "market_tickers": ",".join(tickers),
                "start_ts": now - 60,
                "end_ts": now,
                "period_interval": 1,
            },
        ),
        400,
        "bad_request",
    )
    assert_error(
        api.get(
            "/markets/candlesticks",
            params={
                "market_tickers": ",".join(tickers[:3]),
                "start_ts": now - 4000 * 60,
                "end_ts": now,
                "period_interval": 1,
            },
        ),
        400,
        "bad_request",
    )


def test_batch_and_event_candles(api: httpx.Client) -> None:
    markets = get_ok(api, "/markets", status="settled", limit=4)["markets"]
    start = min(ts(m["open_time"]) for m in markets)
    end = max(ts(m["settlement_ts"]) for m in markets)
    batch = get_ok(
        api,
        "/markets/candlesticks",
        market_tickers=",".join(m["ticker"] for m in markets),
        start_ts=start,
        end_ts=end,
        period_interval=60,
    )
    assert [m["market_ticker"] for m in batch["markets"]] == [m["ticker"] for m in markets]
    for entry, market in zip(batch["markets"], markets, strict=True):
        single = whole_history(api, market, 60)
        assert entry["candlesticks"] == [c for c in single if start <= c["end_period_ts"] <= end]
    event = markets[0]["event_ticker"]
    body = get_ok(
        api,
        f"/series/KXNBAGAME/events/{event}/candlesticks",
        start_ts=start,
        end_ts=end,
        period_interval=1,
    )
    assert sorted(body["market_tickers"]) == sorted(
        m["ticker"] for m in markets if m["event_ticker"] == event
    )
    total = sum(len(c) for c in body["market_candlesticks"])
    assert total <= 5000 and body["adjusted_end_ts"] <= end


def test_include_latest_before_start(api: httpx.Client) -> None:
    market = get_ok(api, "/markets", status="settled", limit=1)["markets"][0]
    minutes = whole_history(api, market, 1)
    gap = next(
        (a, b)
        for a, b in itertools.pairwise(minutes)
        if b["end_period_ts"] - a["end_period_ts"] > 180
    )
    start = gap[0]["end_period_ts"] + 60
    path = f"/series/KXNBAGAME/markets/{market['ticker']}/candlesticks"
    plain = get_ok(api, path, start_ts=start, end_ts=gap[1]["end_period_ts"], period_interval=1)
    assert plain["candlesticks"][0]["end_period_ts"] == gap[1]["end_period_ts"]
    carried = get_ok(
        api,
        path,
        start_ts=start,
        end_ts=gap[1]["end_period_ts"],
        period_interval=1,
        include_latest_before_start="true",
    )["candlesticks"]
    assert carried[0]["end_period_ts"] == start and carried[0]["volume_fp"] == "0.00"
    assert carried[0]["yes_bid"]["close_dollars"] == gap[0]["yes_bid"]["close_dollars"]
    assert carried[1:] == plain["candlesticks"]


def test_cached_history_of_a_closed_market_answers_like_a_fresh_render(api: httpx.Client) -> None:
    """Single and batch answers come from the rendered-history cache once a market has closed; the event
    endpoint renders every answer afresh: the same windows agree candle for candle, twice over."""
    market = get_ok(api, "/markets", status="settled", limit=1)["markets"][0]
    ticker, event = market["ticker"], market["event_ticker"]
    open_ts, close_ts = ts(market["open_time"]), ts(market["close_time"])
    tip = close_ts - 3 * 3600
    windows = [
        (open_ts, close_ts + 3600),
        (tip, tip + 3599),
        (tip + 61, tip + 61),
        (open_ts - 3600, open_ts),
    ]
    for (start, end), _ in itertools.product(windows, range(2)):
        fresh = get_ok(
            api,
            f"/series/KXNBAGAME/events/{event}/candlesticks",
            start_ts=start,
            end_ts=end,
            period_interval=1,
        )
        expected = fresh["market_candlesticks"][fresh["market_tickers"].index(ticker)]
        if fresh["adjusted_end_ts"] < end:
            end = fresh["adjusted_end_ts"]  # the event endpoint truncated: compare what it covered
            expected = [c for c in expected if c["end_period_ts"] <= end]
        single = get_ok(
            api,
            f"/series/KXNBAGAME/markets/{ticker}/candlesticks",
            start_ts=start,
            end_ts=end,
            period_interval=1,
        )
        assert single == {"ticker": ticker, "candlesticks": expected}
        batch = get_ok(
            api,
            "/markets/candlesticks",
            market_tickers=ticker,
            start_ts=start,
            end_ts=end,
            period_interval=1,
        )
        assert batch == {"markets": [{"market_ticker": ticker, "candlesticks": expected}]}
