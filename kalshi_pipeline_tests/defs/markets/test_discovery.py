"""Discovery against an exchange that supports less than Kalshi documents.

A stand-in in front of the real simulator (over its socket) ignores `with_nested_markets` and
`with_milestones` on `/events` and has no `/series/{ticker}`: discovery must still find every market of a
date (without the series' categories), fall back to `expected_expiration_time` for the start, and still
name an unknown series.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest

from kalshi_pipeline.defs.markets.discovery import UnknownSeriesError, discover_markets
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.ratelimit import UnlimitedLimiter
from kalshi_pipeline_tests.defs.markets.helpers import SimDates, sim_dates


class BareExchange(httpx.AsyncBaseTransport):
    """Forward to the simulator, but serve events without nested markets or milestones, and no series."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        if "/series/" in path and path.count("/") == 4:
            body = {"error": {"code": "not_found", "message": "not found"}}
            return httpx.Response(404, json=body, request=request)
        response = await self.inner.handle_async_request(request)
        if not path.endswith("/events"):
            return response
        payload = json.loads(await response.aread())
        payload.pop("milestones", None)
        for event in payload.get("events", []):
            event.pop("markets", None)
        return httpx.Response(response.status_code, json=payload, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def dates(simulator: Any) -> SimDates:
    return sim_dates(simulator.base_url)


def _discover(base_url: str, series: list[str], day: Any) -> tuple[Any, list[str]]:
    async def run() -> tuple[Any, list[str]]:
        transport = BareExchange()
        config = KalshiConfig(base_url=base_url, rate_limit_tier="off")
        async with KalshiClient(config, limiter=UnlimitedLimiter(), transport=transport) as client:
            return await discover_markets(client, series, [day]), transport.paths

    return asyncio.run(run())


def test_markets_are_found_without_nested_markets_or_series_endpoint(
    simulator: Any, dates: SimDates
) -> None:
    day = dates.finished_live()
    found, paths = _discover(simulator.base_url, ["KXNBAGAME"], day)
    frame = found.frame()
    assert frame["event_ticker"].nunique() == dates.games[day]
    assert len(frame) == 2 * dates.games[day]
    assert set(frame["source"]) == {"live"}
    assert set(frame["scheduled_start_source"]) == {"expected_expiration"}
    assert all(frame["scheduled_start"] == frame["expected_expiration_time"] - timedelta(hours=3))
    # The series endpoint answered 404: the series' categories are unknown, its games are found.
    assert any(p.count("/") == 4 and "/series/" in p for p in paths)
    assert frame["series_categories"].isna().all()


def test_unknown_series_is_named_when_it_lists_no_events(simulator: Any, dates: SimDates) -> None:
    with pytest.raises(UnknownSeriesError, match="unknown series 'KXNOSUCHSERIES'"):
        _discover(simulator.base_url, ["KXNOSUCHSERIES"], dates.finished_live())
