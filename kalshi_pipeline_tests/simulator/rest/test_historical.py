"""The historical cutoff and the split between the live and the historical endpoints."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx

from kalshi_pipeline_tests.simulator.rest.helpers import (
    assert_error,
    check_market,
    get_ok,
    ts,
)


def test_historical_cutoff_and_split(api: httpx.Client) -> None:
    cutoff = get_ok(api, "/historical/cutoff")
    assert set(cutoff) >= {"market_settled_ts", "trades_created_ts"}
    cutoff_ts = ts(cutoff["market_settled_ts"])
    assert 85 * 86400 < time.time() - cutoff_ts < 95 * 86400
    archived = get_ok(api, "/historical/markets", limit=100)["markets"]
    assert len(archived) == 100
    for market in archived:
        check_market(market)
        assert market["status"] == "finalized"
        assert ts(market["settlement_ts"]) < cutoff_ts
    ticker = archived[0]["ticker"]
    assert get_ok(api, f"/historical/markets/{ticker}")["market"] == archived[0]
    assert_error(api.get(f"/markets/{ticker}"), 404, "not_found")
    assert get_ok(api, "/markets", tickers=ticker)["markets"] == []
    live = get_ok(api, "/markets", status="settled", limit=1000)["markets"]
    assert all(ts(m["settlement_ts"]) >= cutoff_ts for m in live)
    assert_error(api.get(f"/historical/markets/{live[0]['ticker']}"), 404, "not_found")
    # Events are never archived, but their archived markets are not nested.
    event = get_ok(api, f"/events/{archived[0]['event_ticker']}", with_nested_markets="true")
    assert event["markets"] == [] and "markets" not in event["event"]
    assert_error(
        api.get("/historical/markets", params={"tickers": ticker, "series_ticker": "KXNBAGAME"}),
        400,
        "bad_request",
    )
    start, end = ts(archived[0]["open_time"]), ts(archived[0]["settlement_ts"])
    candles = get_ok(
        api,
        f"/historical/markets/{ticker}/candlesticks",
        start_ts=start,
        end_ts=end,
        period_interval=1,
    )["candlesticks"]
    assert candles
    assert set(candles[0]) == {
        "end_period_ts",
        "yes_bid",
        "yes_ask",
        "price",
        "volume",
        "open_interest",
    }
    assert set(candles[0]["price"]) == {"open", "low", "high", "close", "mean", "previous"}
    assert sum(Decimal(c["volume"]) for c in candles) == Decimal(archived[0]["volume_fp"])
    live_path = f"/series/KXNBAGAME/markets/{ticker}/candlesticks"
    assert_error(
        api.get(live_path, params={"start_ts": start, "end_ts": end, "period_interval": 1}),
        404,
        "not_found",
    )
    batch = get_ok(
        api,
        "/markets/candlesticks",
        market_tickers=ticker,
        start_ts=start,
        end_ts=end,
        period_interval=60,
    )
    assert batch == {"markets": []}
