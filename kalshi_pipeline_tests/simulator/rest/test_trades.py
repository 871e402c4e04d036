"""The trade listings over a real socket, checked against the candles and the market totals."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import httpx

from kalshi_pipeline_tests.simulator.rest.helpers import (
    COUNT,
    assert_error,
    get_ok,
    ts,
    walk,
    whole_history,
)


def test_trades_agree_with_candles(api: httpx.Client) -> None:
    market = get_ok(api, "/markets", status="settled", limit=3)["markets"][2]
    trades = walk(api, "/markets/trades", "trades", ticker=market["ticker"], limit=1000)
    assert trades
    times = [t["created_time"] for t in trades]
    assert times == sorted(times, reverse=True)
    assert len({t["trade_id"] for t in trades}) == len(trades)
    total = sum(Decimal(t["count_fp"]) for t in trades)
    assert total == Decimal(market["volume_fp"])
    assert trades[0]["yes_price_dollars"] == market["last_price_dollars"]
    assert any(Decimal(t["count_fp"]) % 1 for t in trades)  # fractional counts occur
    for trade in trades[:50]:
        assert Decimal(trade["yes_price_dollars"]) + Decimal(trade["no_price_dollars"]) == 1
        assert trade["taker_outcome_side"] in ("yes", "no")
        assert trade["taker_book_side"] == (
            "bid" if trade["taker_outcome_side"] == "yes" else "ask"
        )
        assert COUNT.match(trade["count_fp"])
    minutes = whole_history(api, market, 1)
    per_minute: dict[int, Decimal] = {}
    for trade in trades:
        ts_ms = int(
            datetime.fromisoformat(trade["created_time"].replace("Z", "+00:00")).timestamp() * 1000
        )
        end = -(-ts_ms // 60_000) * 60
        per_minute[end] = per_minute.get(end, Decimal(0)) + Decimal(trade["count_fp"])
    candle_volume = {
        c["end_period_ts"]: Decimal(c["volume_fp"]) for c in minutes if c["volume_fp"] != "0.00"
    }
    assert candle_volume == per_minute
    page = get_ok(
        api, "/markets/trades", ticker=market["ticker"], limit=5, min_ts=ts(times[-1]) + 1
    )
    assert len(page["trades"]) == 5


def test_trades_limit_bounds(api: httpx.Client) -> None:
    """`limit` on trades is 0..1000 (0 = the default of 100); outside that range is a 400."""
    default = get_ok(api, "/markets/trades", limit=0)
    assert len(default["trades"]) == 100 and default["cursor"]
    assert len(get_ok(api, "/markets/trades", limit=1000)["trades"]) == 1000
    assert_error(api.get("/markets/trades", params={"limit": 1001}), 400, "bad_request")
    assert_error(api.get("/markets/trades", params={"limit": -1}), 400, "bad_request")
    assert_error(api.get("/historical/trades", params={"limit": 1001}), 400, "bad_request")
