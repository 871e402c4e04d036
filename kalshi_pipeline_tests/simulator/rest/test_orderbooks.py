"""The order book endpoints over a real socket."""

from __future__ import annotations

from decimal import Decimal

import httpx

from kalshi_pipeline_tests.simulator.rest.helpers import (
    COUNT,
    assert_error,
    get_ok,
)


def test_orderbooks(api: httpx.Client) -> None:
    markets = get_ok(api, "/markets", status="open", limit=50)["markets"]
    live = next(m for m in markets if m["volume_fp"] != "0.00")
    book = get_ok(api, f"/markets/{live['ticker']}/orderbook")["orderbook_fp"]
    assert set(book) == {"yes_dollars", "no_dollars"}
    for side in book.values():
        prices = [Decimal(p) for p, _ in side]
        assert prices == sorted(prices) and len(prices) > 1
        assert all(COUNT.match(c) for _, c in side)
    assert Decimal(book["yes_dollars"][-1][0]) < 1 - Decimal(book["no_dollars"][-1][0])
    shallow = get_ok(api, f"/markets/{live['ticker']}/orderbook", depth=2)["orderbook_fp"]
    assert len(shallow["yes_dollars"]) <= 2
    many = get_ok(api, "/markets/orderbooks", tickers=[m["ticker"] for m in markets[:3]])
    assert [b["ticker"] for b in many["orderbooks"]] == [m["ticker"] for m in markets[:3]]
    assert_error(api.get("/markets/orderbooks"), 400, "bad_request")
