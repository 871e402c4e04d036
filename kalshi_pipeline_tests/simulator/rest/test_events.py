"""`/events`, `/milestones` and `/series` over a real socket."""

from __future__ import annotations

import re
import time

import httpx

from kalshi_pipeline_tests.simulator.rest.helpers import (
    RFC3339,
    assert_error,
    check_market,
    get_ok,
    ts,
    walk,
)


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
    assert ts(market["expected_expiration_time"]) - ts(milestone["start_date"]) == 3 * 3600
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
    assert recent and all(ts(m["start_date"]) >= ts(since) for m in recent)
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


def test_series_list_params(api: httpx.Client) -> None:
    """`GET /series` leaves product_metadata out unless asked and filters on `min_updated_ts`."""
    plain = get_ok(api, "/series")["series"]
    assert plain and all("product_metadata" not in s for s in plain)
    with_meta = get_ok(api, "/series", include_product_metadata="true")["series"]
    assert with_meta[0]["product_metadata"]["competition"] == "Pro Basketball (M)"
    updated = ts(plain[0]["last_updated_ts"])
    assert get_ok(api, "/series", min_updated_ts=updated)["series"] == []
    assert len(get_ok(api, "/series", min_updated_ts=updated - 1)["series"]) == 1
    assert "product_metadata" in get_ok(api, "/series/KXNBAGAME")["series"]
    assert_error(api.get("/series", params={"min_updated_ts": "x"}), 400, "bad_request")
