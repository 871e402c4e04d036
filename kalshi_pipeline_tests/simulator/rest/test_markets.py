"""`/markets` over a real socket: pages, filters, lookups, lifecycle and the shape of Market objects."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from kalshi_pipeline_tests.simulator.rest.helpers import (
    RFC3339,
    assert_error,
    check_market,
    get_ok,
    ts,
    walk,
    whole_history,
)


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
        opened = ts(market["open_time"])
        closed = ts(market["close_time"])
        settled_at = ts(market["settlement_ts"])
        expected = ts(market["expected_expiration_time"])
        assert opened < closed < settled_at
        assert settled_at - opened < 3.3 * 86400
        assert closed < expected + 2 * 3600
    upcoming = get_ok(api, "/markets", status="unopened", limit=10)["markets"]
    for market in upcoming:
        # Until the game ends the close time is far out (postponements); it moves to the real close later.
        assert ts(market["close_time"]) - ts(market["expected_expiration_time"]) > 10 * 86400


def test_pairs_are_complementary(api: httpx.Client) -> None:
    settled = get_ok(api, "/markets", status="settled", limit=40)["markets"]
    by_event: dict[str, list[dict[str, Any]]] = {}
    for market in settled:
        by_event.setdefault(market["event_ticker"], []).append(market)
    pairs = [pair for pair in by_event.values() if len(pair) == 2]
    assert pairs
    for a, b in pairs:
        assert {a["result"], b["result"]} in ({"yes", "no"}, {"scalar"})
        paid = Decimal(a["settlement_value_dollars"]) + Decimal(b["settlement_value_dollars"])
        assert paid == 1
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


def test_live_games_progress(start_simulator: Any) -> None:
    # A fresh exchange: the session's one has been up for most of a long run and its 30-minute injected
    # games may have ended by now.
    sim = start_simulator(live_games=2, game_minutes=30, schedule=False)
    with httpx.Client(base_url=sim.base_url, timeout=30) as api:
        _check_live_games_progress(api)


def _check_live_games_progress(api: httpx.Client) -> None:
    now = time.time()
    live = [
        m
        for m in get_ok(api, "/markets", status="open", limit=1000)["markets"]
        if ts(m["expected_expiration_time"]) - 3 * 3600 < now
    ]
    assert len(live) >= 4  # both markets of the two injected games
    ticker = max(live, key=lambda m: m["expected_expiration_time"])["ticker"]
    first = get_ok(api, "/markets/trades", ticker=ticker, limit=1)["trades"][0]
    assert now - ts(first["created_time"]) < 120

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


def test_day_old_market_snapshot_agrees_with_trades_and_candles(api: httpx.Client) -> None:
    """A market closed over a day ago (served from its summary) matches its trades and candles."""
    settled = get_ok(api, "/markets", status="settled", limit=60)["markets"]
    old = [m for m in settled if ts(m["close_time"]) < time.time() - 2 * 86400]
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
        minutes = whole_history(api, market, 60)
        assert sum(Decimal(c["volume_fp"]) for c in minutes) == Decimal(market["volume_fp"])
        assert minutes[-1]["open_interest_fp"] == market["open_interest_fp"]
    archived = get_ok(api, "/historical/markets", limit=1)["markets"][0]
    start, end = ts(archived["open_time"]) - 3600, ts(archived["settlement_ts"]) + 3600
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


def test_tied_games_settle_scalar_at_one_half(api: httpx.Client) -> None:
    """Some seeded games are called off tied: both markets settle `scalar` at 0.50, the score is level."""
    settled = walk(api, "/markets", "markets", status="settled", limit=1000)
    scalar = [m for m in settled if m["result"] == "scalar"]
    assert scalar and len(scalar) < len(settled) / 5
    events = {m["event_ticker"] for m in scalar}
    for market in settled:
        if market["event_ticker"] in events:
            check_market(market)
            assert market["result"] == "scalar"
            assert market["settlement_value_dollars"] == "0.5000"
            assert market["expiration_value"] == "Tie"
            assert market["settlement_bounds_type"] == "default"
    event = get_ok(api, f"/events/{sorted(events)[0]}")["event"]
    milestone = get_ok(api, "/milestones", limit=5, related_event_ticker=event["event_ticker"])
    live = get_ok(api, f"/live_data/milestone/{milestone['milestones'][0]['id']}")["live_data"]
    details = live["details"]
    assert details["status"] == "finished" and details["home_points"] == details["away_points"]
    assert "winner" not in details


def test_minute_volumes_of_finished_games_add_up_to_volume_fp(api: httpx.Client) -> None:
    """The closing partial minute trades: all 1-minute candles up to ceil(close_time) hold all the volume."""
    settled = get_ok(api, "/markets", status="settled", limit=60)["markets"]
    checked = with_closing_minute = 0
    for market in settled:
        close_s = ts(market["close_time"])
        end = -(-close_s // 60) * 60
        candles = get_ok(
            api,
            f"/series/KXNBAGAME/markets/{market['ticker']}/candlesticks",
            start_ts=ts(market["open_time"]),
            end_ts=end,
            period_interval=1,
        )["candlesticks"]
        total = sum(Decimal(c["volume_fp"]) for c in candles)
        assert total == Decimal(market["volume_fp"]), market["ticker"]
        last = candles[-1]
        if close_s % 60 and last["end_period_ts"] == end and Decimal(last["volume_fp"]) > 0:
            with_closing_minute += 1  # the candle ending after close_time holds the closing print
        checked += 1
        if checked == 8:
            break
    assert checked == 8 and with_closing_minute == sum(
        1 for m in settled[:8] if ts(m["close_time"]) % 60
    )
