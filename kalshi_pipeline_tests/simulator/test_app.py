"""The REST API of the simulated exchange, checked over a real socket with plain httpx and JSON."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

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


@pytest.fixture(scope="module")
def api(simulator: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator.base_url, timeout=30) as client:
        yield client


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
    if market["status"] == "finalized":
        assert market["result"] in ("yes", "no")
        assert market["settlement_value_dollars"] == (
            "1.0000" if market["result"] == "yes" else "0.0000"
        )
        assert RFC3339.match(market["settlement_ts"])
    else:
        # x-omitempty in Kalshi's schema: unset nullable fields are left out, not null.
        assert "settlement_ts" not in market
        assert "settlement_value_dollars" not in market or market["status"] == "determined"
    assert "fee_waiver_expiration_time" not in market


def test_health_and_exchange_status(simulator: Any, api: httpx.Client) -> None:
    root = simulator.base_url.rsplit("/trade-api", 1)[0]
    assert httpx.get(f"{root}/_sim/health").json()["status"] == "ok"
    status = get_ok(api, "/exchange/status")
    assert status["exchange_active"] is True and status["trading_active"] is True
    assert simulator.ws_url.endswith("/trade-api/ws/v2")


def test_sim_stats_counts_requests_admissions_and_429s(start_simulator: Any) -> None:
    sim = start_simulator(rate_limit="basic", faults="script=429;ok")
    root = sim.base_url.rsplit("/trade-api", 1)[0]
    since = int(time.time())
    with httpx.Client() as client:
        statuses = [client.get(f"{sim.base_url}/exchange/status").status_code for _ in range(60)]
    stats = httpx.get(f"{root}/_sim/stats", params={"since": since}).json()

    assert stats["rate_limit"] == {"tier": "basic", "requests_per_s": 20.0, "burst_requests": 40.0}
    totals = stats["totals"]
    assert totals["requests"] == 60
    assert totals["fault_429"] == statuses.count(429) - totals["rate_limited"] == 1
    assert totals["rate_limited"] >= 1 and totals["admitted"] == statuses.count(200)
    # The stats endpoint itself is neither counted nor metered.
    assert totals["requests"] == totals["admitted"] + totals["rate_limited"] + totals["fault_429"]
    bins = stats["per_second"]
    assert [b["second"] for b in bins] == sorted(b["second"] for b in bins)
    assert all(b["second"] >= since for b in bins)
    for kind in ("requests", "admitted", "rate_limited", "fault_429"):
        assert sum(b[kind] for b in bins) == totals[kind]
    later = httpx.get(f"{root}/_sim/stats", params={"since": bins[-1]["second"] + 1}).json()
    assert later["per_second"] == [] and later["totals"] == totals
    bad = httpx.get(f"{root}/_sim/stats", params={"since": "yesterday"})
    assert_error(bad, 400, "bad_request")


def test_markets_page_shapes(api: httpx.Client) -> None:
    body = get_ok(api, "/markets", limit=1000)
    assert set(body) == {"markets", "cursor"}
    assert 500 < len(body["markets"]) <= 1000
    assert (body["cursor"] == "") == (len(body["markets"]) < 1000)
    for market in body["markets"]:
        check_market(market)
    statuses = {m["status"] for m in body["markets"]}
    assert {"initialized", "active", "finalized"} <= statuses


def test_market_pagination_walks_everything_once(api: httpx.Client) -> None:
    everything = walk(api, "/markets", "markets", limit=1000)
    one_by_one = walk(api, "/markets", "markets", limit=1, status="open")
    tickers = [m["ticker"] for m in everything]
    assert len(tickers) == len(set(tickers))
    open_tickers = [m["ticker"] for m in one_by_one]
    assert len(open_tickers) == len(set(open_tickers)) > 4
    assert set(open_tickers) == {m["ticker"] for m in everything if m["status"] == "active"}
    assert get_ok(api, "/markets", limit=1000, status="open")["cursor"] == ""


def test_market_filters(api: httpx.Client) -> None:
    markets = get_ok(api, "/markets", limit=20, status="settled")["markets"]
    assert markets and all(m["status"] == "finalized" for m in markets)
    event = markets[0]["event_ticker"]
    by_event = get_ok(api, "/markets", event_ticker=event)["markets"]
    assert len(by_event) == 2 and {m["event_ticker"] for m in by_event} == {event}
    tickers = ",".join(m["ticker"] for m in markets[:3])
    assert {m["ticker"] for m in get_ok(api, "/markets", tickers=tickers)["markets"]} == set(
        tickers.split(",")
    )
    now = int(time.time())
    closed = get_ok(api, "/markets", min_close_ts=now - 86400, max_close_ts=now, limit=1000)[
        "markets"
    ]
    for market in closed:
        assert market["status"] in ("closed", "determined", "finalized")
    unopened = get_ok(api, "/markets", status="unopened", limit=5)["markets"]
    assert unopened and all(m["status"] == "initialized" for m in unopened)
    assert get_ok(api, "/markets", mve_filter="only")["markets"] == []
    assert get_ok(api, "/markets", series_ticker="KXNFLGAME")["markets"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 1001},
        {"limit": -1},
        {"limit": "ten"},
        {"status": "open,closed"},
        {"status": "active"},
        {"min_created_ts": 1, "min_close_ts": 2},
        {"min_close_ts": 1, "status": "open"},
        {"min_settled_ts": 1, "status": "closed"},
        {"min_created_ts": 1, "status": "settled"},
        {"min_updated_ts": 1, "status": "open"},
        {"min_updated_ts": 1, "series_ticker": "KXNBAGAME"},
        {"mve_filter": "sometimes"},
        {"cursor": "not-a-cursor"},
    ],
)
def test_market_filter_errors(api: httpx.Client, params: dict[str, Any]) -> None:
    assert_error(api.get("/markets", params=params), 400, "bad_request")


def test_market_lookup_and_errors(api: httpx.Client) -> None:
    market = get_ok(api, "/markets", limit=1, status="open")["markets"][0]
    one = get_ok(api, f"/markets/{market['ticker']}")["market"]
    check_market(one)
    assert one["ticker"] == market["ticker"]
    assert_error(api.get("/markets/KXNBAGAME-99JAN01AAABBB-AAA"), 404, "not_found")
    assert_error(api.get("/no/such/route"), 404, "not_found")
    redirect = api.get("/markets/", params={"limit": 2})
    assert redirect.status_code == 301
    assert redirect.headers["location"].endswith("/trade-api/v2/markets?limit=2")


def test_game_lifecycle_times(api: httpx.Client) -> None:
    settled = get_ok(api, "/markets", status="settled", limit=50)["markets"]
    for market in settled:
        opened = _ts(market["open_time"])
        closed = _ts(market["close_time"])
        settled_at = _ts(market["settlement_ts"])
        expected = _ts(market["expected_expiration_time"])
        assert opened < closed < settled_at
        assert settled_at - opened < 3.3 * 86400
        assert closed < expected + 2 * 3600
    upcoming = get_ok(api, "/markets", status="unopened", limit=10)["markets"]
    for market in upcoming:
        # Until the game ends the close time is far out (postponements); it moves to the real close later.
        assert _ts(market["close_time"]) - _ts(market["expected_expiration_time"]) > 10 * 86400


def test_pairs_are_complementary(api: httpx.Client) -> None:
    settled = get_ok(api, "/markets", status="settled", limit=40)["markets"]
    by_event: dict[str, list[dict[str, Any]]] = {}
    for market in settled:
        by_event.setdefault(market["event_ticker"], []).append(market)
    pairs = [pair for pair in by_event.values() if len(pair) == 2]
    assert pairs
    for a, b in pairs:
        assert {a["result"], b["result"]} == {"yes", "no"}
        assert a["volume_fp"] != "0.00"
    active = get_ok(api, "/markets", status="open", limit=200)["markets"]
    by_event = {}
    for market in active:
        by_event.setdefault(market["event_ticker"], []).append(market)
    for pair in by_event.values():
        if len(pair) == 2 and pair[0]["volume_fp"] != "0.00":
            mid = [
                (Decimal(m["yes_bid_dollars"]) + Decimal(m["yes_ask_dollars"])) / 2 for m in pair
            ]
            assert abs(mid[0] + mid[1] - 1) < Decimal("0.08")


def test_events_and_nested_markets(api: httpx.Client) -> None:
    body = get_ok(api, "/events", limit=5, with_nested_markets="true", with_milestones="true")
    assert set(body) == {"events", "cursor", "milestones"}
    assert len(body["events"]) == 5 and len(body["milestones"]) == 5
    for event in body["events"]:
        assert re.match(r"^KXNBAGAME-\d{2}[A-Z]{3}\d{2}[A-Z]{6}$", event["event_ticker"])
        assert event["series_ticker"] == "KXNBAGAME"
        assert len(event["markets"]) == 2
        for market in event["markets"]:
            check_market(market)
    single = get_ok(api, f"/events/{body['events'][0]['event_ticker']}")
    assert "markets" not in single["event"] and len(single["markets"]) == 2
    nested = get_ok(api, f"/events/{body['events'][0]['event_ticker']}", with_nested_markets="true")
    assert len(nested["event"]["markets"]) == 2
    assert_error(api.get("/events/KXNBAGAME-99JAN01AAABBB"), 404, "not_found")
    assert_error(api.get("/events", params={"limit": 201}), 400, "bad_request")
    settled = get_ok(api, "/events", status="settled", limit=3, series_ticker="KXNBAGAME")["events"]
    assert len(settled) == 3
    chosen = ",".join(e["event_ticker"] for e in settled[:2])
    assert len(get_ok(api, "/events", tickers=chosen)["events"]) == 2


def test_milestones(api: httpx.Client) -> None:
    event = get_ok(api, "/events", limit=1, status="open")["events"][0]
    assert_error(api.get("/milestones"), 400, "bad_request")
    body = get_ok(api, "/milestones", limit=5, related_event_ticker=event["event_ticker"])
    assert len(body["milestones"]) == 1 and body["cursor"] == ""
    milestone = body["milestones"][0]
    assert milestone["category"] == "Sports" and milestone["type"] == "basketball_game"
    assert milestone["details"]["competition"] == "Pro Basketball (M)"
    assert milestone["primary_event_tickers"] == [event["event_ticker"]]
    assert RFC3339.match(milestone["start_date"])
    market = get_ok(api, "/markets", event_ticker=event["event_ticker"])["markets"][0]
    assert _ts(market["expected_expiration_time"]) - _ts(milestone["start_date"]) == 3 * 3600
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
    recent = walk(
        api,
        "/milestones",
        "milestones",
        limit=50,
        minimum_start_date=since,
        competition="Pro Basketball (M)",
        type="basketball_game",
        category="Sports",
    )
    assert recent and all(_ts(m["start_date"]) >= _ts(since) for m in recent)
    starts = [m["start_date"] for m in recent]
    assert starts == sorted(starts)
    assert get_ok(api, f"/milestones/{milestone['id']}")["milestone"] == milestone


def test_series(api: httpx.Client) -> None:
    series = get_ok(api, "/series/KXNBAGAME")["series"]
    assert series["ticker"] == "KXNBAGAME" and series["category"] == "Sports"
    assert "volume_fp" not in series
    listed = get_ok(api, "/series", category="Sports", tags="Basketball")["series"]
    assert [s["ticker"] for s in listed] == ["KXNBAGAME"]
    assert_error(api.get("/series/KXNOPE"), 404, "not_found")


def test_historical_cutoff_and_split(api: httpx.Client) -> None:
    cutoff = get_ok(api, "/historical/cutoff")
    assert set(cutoff) >= {"market_settled_ts", "trades_created_ts"}
    cutoff_ts = _ts(cutoff["market_settled_ts"])
    assert 85 * 86400 < time.time() - cutoff_ts < 95 * 86400
    archived = get_ok(api, "/historical/markets", limit=100)["markets"]
    assert len(archived) == 100
    for market in archived:
        check_market(market)
        assert market["status"] == "finalized"
        assert _ts(market["settlement_ts"]) < cutoff_ts
    ticker = archived[0]["ticker"]
    assert get_ok(api, f"/historical/markets/{ticker}")["market"] == archived[0]
    assert_error(api.get(f"/markets/{ticker}"), 404, "not_found")
    assert get_ok(api, "/markets", tickers=ticker)["markets"] == []
    live = get_ok(api, "/markets", status="settled", limit=1000)["markets"]
    assert all(_ts(m["settlement_ts"]) >= cutoff_ts for m in live)
    assert_error(api.get(f"/historical/markets/{live[0]['ticker']}"), 404, "not_found")
    # Events are never archived, but their archived markets are not nested.
    event = get_ok(api, f"/events/{archived[0]['event_ticker']}", with_nested_markets="true")
    assert event["markets"] == [] and "markets" not in event["event"]
    assert_error(
        api.get("/historical/markets", params={"tickers": ticker, "series_ticker": "KXNBAGAME"}),
        400,
        "bad_request",
    )
    start, end = _ts(archived[0]["open_time"]), _ts(archived[0]["settlement_ts"])
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


def _whole_history(api: httpx.Client, market: dict[str, Any], period: int) -> list[dict[str, Any]]:
    start = _ts(market["open_time"]) - 3600
    end = _ts(market.get("settlement_ts") or market["close_time"]) + 3600
    end = min(end, start + 4900 * 60 if period == 1 else end)
    return get_ok(
        api,
        f"/series/KXNBAGAME/markets/{market['ticker']}/candlesticks",
        start_ts=start,
        end_ts=end,
        period_interval=period,
    )["candlesticks"]


def test_candles_agree_with_market_and_each_other(api: httpx.Client) -> None:
    market = get_ok(api, "/markets", status="settled", limit=1)["markets"][0]
    minutes = _whole_history(api, market, 1)
    hours = _whole_history(api, market, 60)
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
    minutes = _whole_history(api, market, 1)
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
        api, "/markets/trades", ticker=market["ticker"], limit=5, min_ts=_ts(times[-1]) + 1
    )
    assert len(page["trades"]) == 5


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
    start = min(_ts(m["open_time"]) for m in markets)
    end = max(_ts(m["settlement_ts"]) for m in markets)
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
        single = _whole_history(api, market, 60)
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
    minutes = _whole_history(api, market, 1)
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


def test_live_games_progress(simulator: Any, api: httpx.Client) -> None:
    now = time.time()
    live = [
        m
        for m in get_ok(api, "/markets", status="open", limit=1000)["markets"]
        if _ts(m["expected_expiration_time"]) - 3 * 3600 < now
    ]
    assert len(live) >= 4  # both markets of the two injected games
    ticker = max(live, key=lambda m: m["expected_expiration_time"])["ticker"]
    first = get_ok(api, "/markets/trades", ticker=ticker, limit=1)["trades"][0]
    assert now - _ts(first["created_time"]) < 120

    def trading_state() -> tuple[str, ...]:
        market = get_ok(api, f"/markets/{ticker}")["market"]
        fields = (
            "volume_fp",
            "yes_bid_dollars",
            "yes_ask_dollars",
            "yes_bid_size_fp",
            "yes_ask_size_fp",
        )
        return tuple(market[f] for f in fields)

    before = trading_state()
    deadline = time.time() + 30
    while time.time() < deadline and trading_state() == before:
        time.sleep(0.25)
    assert trading_state() != before
    minutes = get_ok(
        api,
        f"/series/KXNBAGAME/markets/{ticker}/candlesticks",
        start_ts=int(now) - 3600,
        end_ts=int(now) + 120,
        period_interval=1,
    )["candlesticks"]
    assert minutes[-1]["end_period_ts"] >= now  # the open current minute is included


def test_same_seed_same_payloads(start_simulator: Any, simulator: Any) -> None:
    other = start_simulator(seed=7)
    third = start_simulator(seed=8)
    with httpx.Client(timeout=30) as client:
        params = {"limit": 50, "status": "settled"}
        a = client.get(f"{simulator.base_url}/historical/markets", params=params).json()
        b = client.get(f"{other.base_url}/historical/markets", params=params).json()
        c = client.get(f"{third.base_url}/historical/markets", params=params).json()
        assert a == b
        assert a != c
        ticker = a["markets"][0]["ticker"]
        query = {"start_ts": 0, "end_ts": 2_000_000_000, "period_interval": 1440}
        path = f"/historical/markets/{ticker}/candlesticks"
        assert (
            client.get(simulator.base_url + path, params=query).json()
            == client.get(other.base_url + path, params=query).json()
        )


def _ts(text: str) -> int:
    """Unix seconds of an RFC3339 timestamp (fractions truncated)."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


# -- fidelity details checked against docs.kalshi.com ------------------------------------------------
def test_unset_nullable_fields_are_omitted(api: httpx.Client) -> None:
    """Market and EventData fields marked x-omitempty are absent while unset, never `null`."""
    live = get_ok(api, "/markets", status="open", limit=5)["markets"]
    for market in live:
        for field in ("settlement_value_dollars", "settlement_ts", "fee_waiver_expiration_time"):
            assert field not in market, field
        assert market["occurrence_datetime"] is None  # nullable without omitempty: present
    settled = get_ok(api, "/markets", status="settled", limit=1)["markets"][0]
    assert settled["settlement_value_dollars"] in ("0.0000", "1.0000")
    assert RFC3339.match(settled["settlement_ts"])
    events = get_ok(api, "/events", limit=5)["events"]
    for event in events:
        for field in ("strike_date", "strike_period", "fee_type_override", "markets"):
            assert field not in event, field
        assert {"event_ticker", "series_ticker", "sub_title", "title"} <= set(event)
        assert event["collateral_return_type"] == "" and event["available_on_brokers"] is False
    nested = get_ok(api, "/events", limit=5, with_nested_markets="true")["events"]
    assert all(len(event["markets"]) == 2 for event in nested if event["markets"])


def test_trades_limit_bounds(api: httpx.Client) -> None:
    """`limit` on trades is 0..1000 (0 = the default of 100); outside that range is a 400."""
    default = get_ok(api, "/markets/trades", limit=0)
    assert len(default["trades"]) == 100 and default["cursor"]
    assert len(get_ok(api, "/markets/trades", limit=1000)["trades"]) == 1000
    assert_error(api.get("/markets/trades", params={"limit": 1001}), 400, "bad_request")
    assert_error(api.get("/markets/trades", params={"limit": -1}), 400, "bad_request")
    assert_error(api.get("/historical/trades", params={"limit": 1001}), 400, "bad_request")


def test_series_list_params(api: httpx.Client) -> None:
    """`GET /series` leaves product_metadata out unless asked and filters on `min_updated_ts`."""
    plain = get_ok(api, "/series")["series"]
    assert plain and all("product_metadata" not in s for s in plain)
    with_meta = get_ok(api, "/series", include_product_metadata="true")["series"]
    assert with_meta[0]["product_metadata"]["competition"] == "Pro Basketball (M)"
    updated = _ts(plain[0]["last_updated_ts"])
    assert get_ok(api, "/series", min_updated_ts=updated)["series"] == []
    assert len(get_ok(api, "/series", min_updated_ts=updated - 1)["series"]) == 1
    assert "product_metadata" in get_ok(api, "/series/KXNBAGAME")["series"]
    assert_error(api.get("/series", params={"min_updated_ts": "x"}), 400, "bad_request")


def test_day_old_market_snapshot_agrees_with_trades_and_candles(api: httpx.Client) -> None:
    """A market closed over a day ago (served from its summary) matches its trades and candles."""
    settled = get_ok(api, "/markets", status="settled", limit=60)["markets"]
    old = [m for m in settled if _ts(m["close_time"]) < time.time() - 2 * 86400]
    assert len(old) >= 2
    for market in old[:2]:
        assert market["volume_24h_fp"] == "0.00"
        assert market["yes_bid_dollars"] == "0.0000" and market["yes_ask_dollars"] == "1.0000"
        assert market["previous_price_dollars"] == market["last_price_dollars"]
        trades = walk(api, "/markets/trades", "trades", ticker=market["ticker"], limit=1000)
        assert sum(Decimal(t["count_fp"]) for t in trades) == Decimal(market["volume_fp"])
        assert trades[0]["yes_price_dollars"] == market["last_price_dollars"]
        # The closing print happens at the final buzzer, at the result's price.
        last_price = Decimal(market["last_price_dollars"])
        assert (
            last_price >= Decimal("0.99")
            if market["result"] == "yes"
            else last_price <= Decimal("0.01")
        )
        minutes = _whole_history(api, market, 60)
        assert sum(Decimal(c["volume_fp"]) for c in minutes) == Decimal(market["volume_fp"])
        assert minutes[-1]["open_interest_fp"] == market["open_interest_fp"]
    archived = get_ok(api, "/historical/markets", limit=1)["markets"][0]
    start, end = _ts(archived["open_time"]) - 3600, _ts(archived["settlement_ts"]) + 3600
    history = get_ok(
        api,
        f"/historical/markets/{archived['ticker']}/candlesticks",
        start_ts=start,
        end_ts=end,
        period_interval=60,
    )["candlesticks"]
    assert sum(Decimal(c["volume"]) for c in history) == Decimal(archived["volume_fp"])
    assert history[-1]["open_interest"] == archived["open_interest_fp"]
    traded = [c for c in history if c["price"]["close"] is not None]
    assert traded[-1]["price"]["close"] == archived["last_price_dollars"]
