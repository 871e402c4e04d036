"""Observing game states when Kalshi's live data lacks or renames documented keys: NULL columns, counted, no crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from kalshi_pipeline.defs.games.checks import missing_state_fields
from kalshi_pipeline.defs.games.states import GameStates, observe_games
from kalshi_pipeline.defs.markets.refresh import refresh_markets
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.ratelimit import UnlimitedLimiter
from kalshi_pipeline.warehouse import open_warehouse

START = datetime(2026, 1, 20, 23, 0, tzinfo=UTC)


class _StripKeys(httpx.AsyncHTTPTransport):
    """Forwards to the exchange; removes `round` and renames `home_points` in every live-data answer."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if "/live_data/batch" not in request.url.path:
            return response
        body = json.loads(await response.aread())
        for item in body["live_datas"]:
            item["details"].pop("round", None)
            item["details"]["homeScore"] = item["details"].pop("home_points")
        return httpx.Response(response.status_code, json=body)


def test_absent_keys_leave_nulls_and_are_counted(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim = start_simulator(now=START, live_games=2, game_minutes=30)
    world = sim.app.state.world
    day = next(g for g in world.games if g.injected).game_date
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    now = datetime.fromtimestamp(world.now_ms() / 1000, UTC)

    async def run() -> GameStates:
        config = KalshiConfig(base_url=sim.base_url, rate_limit_tier="off")
        async with KalshiClient(
            config, limiter=UnlimitedLimiter(), transport=_StripKeys()
        ) as client:
            await refresh_markets(wh, client, ["KXNBAGAME"], [day], now=now)
            return await observe_games(wh, client, [day], now=now, replay_pbp=False)

    try:
        done = asyncio.run(run())
        rows = wh.game_states([day])
    finally:
        wh.close()
    started = int((rows["status"] != "none").sum())
    assert done.live_rows == len(rows) == done.games > 0
    assert done.missing_fields["home_points"] == done.games
    assert done.missing_fields["period"] == started and done.missing_fields["status"] == 0
    assert rows["home_points"].isna().all() and rows["away_points"].notna().all()
    assert all("homeScore" in json.loads(d) for d in rows["details"])
    assert set(rows.loc[rows["status"] != "none", "missing_keys"]) == {"home_points,period"}
    assert "home_points absent in" in missing_state_fields(done.missing_fields, done.live_rows)
