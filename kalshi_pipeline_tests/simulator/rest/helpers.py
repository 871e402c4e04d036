"""Helpers of the REST API tests: plain httpx calls, Kalshi's error shape, pagination, Market checks."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

DOLLARS = re.compile(r"^\d\.\d{4}$")
COUNT = re.compile(r"^\d+\.\d{2}$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
REQUIRED_MARKET_FIELDS = [
    "ticker",
    "event_ticker",
    "market_type",
    "yes_sub_title",
    "no_sub_title",
    "created_time",
    "updated_time",
    "open_time",
    "close_time",
    "latest_expiration_time",
    "settlement_timer_seconds",
    "status",
    "notional_value_dollars",
    "yes_bid_dollars",
    "yes_ask_dollars",
    "no_bid_dollars",
    "no_ask_dollars",
    "yes_bid_size_fp",
    "yes_ask_size_fp",
    "last_price_dollars",
    "previous_yes_bid_dollars",
    "previous_yes_ask_dollars",
    "previous_price_dollars",
    "volume_fp",
    "volume_24h_fp",
    "open_interest_fp",
    "result",
    "can_close_early",
    "expiration_value",
    "rules_primary",
    "rules_secondary",
    "price_level_structure",
    "price_ranges",
]
LEGACY_FIELDS = [
    "yes_bid",
    "yes_ask",
    "no_bid",
    "no_ask",
    "last_price",
    "previous_yes_bid",
    "previous_yes_ask",
    "previous_price",
    "notional_value",
    "liquidity",
    "settlement_value",
    "volume",
    "volume_24h",
    "open_interest",
    "category",
    "risk_limit_cents",
    "tick_size",
    "response_price_units",
    "fractional_trading_enabled",
]
OBJECT_STATUSES = {"initialized", "inactive", "active", "closed", "determined", "finalized"}


def get_ok(api: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def walk(api: httpx.Client, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    seen: set[str] = set()
    while True:
        query = dict(params)
        if cursor:
            query["cursor"] = cursor
        body = get_ok(api, path, **query)
        items.extend(body[key])
        cursor = body["cursor"]
        if cursor == "":
            return items
        assert cursor not in seen
        seen.add(cursor)


def check_market(market: dict[str, Any]) -> None:
    for field in REQUIRED_MARKET_FIELDS:
        assert field in market, field
    for field in LEGACY_FIELDS:
        assert field not in market, field
    for field, value in market.items():
        if field.endswith("_dollars") and value is not None:
            assert DOLLARS.match(value), (field, value)
        if field.endswith("_fp"):
            assert COUNT.match(value), (field, value)
        if field.endswith("_time") and value is not None:
            assert RFC3339.match(value), (field, value)
    assert market["status"] in OBJECT_STATUSES
    assert market["market_type"] == "binary"
    assert market["ticker"].startswith(market["event_ticker"] + "-")
    assert market["price_level_structure"] == "tapered_deci_cent"
    assert market["price_ranges"][1] == {"start": "0.1000", "end": "0.9000", "step": "0.0100"}
    bid, ask = Decimal(market["yes_bid_dollars"]), Decimal(market["yes_ask_dollars"])
    assert bid < ask
    assert Decimal(market["no_bid_dollars"]) == 1 - ask
    assert Decimal(market["no_ask_dollars"]) == 1 - bid
    assert market["settlement_bounds_type"] == "default"
    if market["status"] == "finalized":
        assert market["result"] in ("yes", "no", "scalar")
        paid = {"yes": "1.0000", "no": "0.0000", "scalar": "0.5000"}[market["result"]]
        assert market["settlement_value_dollars"] == paid
        assert RFC3339.match(market["settlement_ts"])
    else:
        # x-omitempty in Kalshi's schema: unset nullable fields are left out, not null.
        assert "settlement_ts" not in market
        assert "settlement_value_dollars" not in market or market["status"] == "determined"
    assert "fee_waiver_expiration_time" not in market


def ts(text: str) -> int:
    """Unix seconds of an RFC3339 timestamp (fractions truncated)."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def whole_history(api: httpx.Client, market: dict[str, Any], period: int) -> list[dict[str, Any]]:
    start = ts(market["open_time"]) - 3600
    end = ts(market.get("settlement_ts") or market["close_time"]) + 3600
    end = min(end, start + 4900 * 60 if period == 1 else end)
    return get_ok(
        api,
        f"/series/KXNBAGAME/markets/{market['ticker']}/candlesticks",
        start_ts=start,
        end_ts=end,
        period_interval=period,
    )["candlesticks"]
