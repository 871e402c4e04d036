"""`ingest_raw_candles` called directly against the simulator, with the clock pinned inside a game."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from kalshi_pipeline.defs.candlesticks.ingest import ingest_raw_candles
from kalshi_pipeline.defs.markets.refresh import refresh_markets
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.ratelimit import UnlimitedLimiter
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline.warehouse.schema import CANDLESTICKS_RAW
from kalshi_pipeline_tests.defs.markets.helpers import sim_dates

T = TypeVar("T")


def _with_client(base_url: str, work: Callable[[KalshiClient], Awaitable[T]]) -> T:
    async def run() -> T:
        config = KalshiConfig(base_url=base_url, rate_limit_tier="off")
        async with KalshiClient(config, limiter=UnlimitedLimiter()) as client:
            return await work(client)

    return asyncio.run(run())


def test_windows_stop_at_the_given_time_and_rows_carry_it(simulator: Any, tmp_path: Path) -> None:
    url = simulator.base_url
    day = sim_dates(url).finished_live()
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    try:
        _with_client(
            url, lambda c: refresh_markets(wh, c, ["KXNBAGAME"], [day], now=datetime.now(UTC))
        )
        markets = wh.markets([day])
        # Twenty minutes and a few seconds after the day's first tip-off, as if the run happened then.
        now = markets["scheduled_start"].min().to_pydatetime() + timedelta(minutes=20, seconds=7)
        done = _with_client(
            url, lambda c: ingest_raw_candles(wh, c, [day], now=now, preview_rows=5)
        )
        assert done.games == markets["event_ticker"].nunique() and done.markets == len(markets)
        last_minute = int(now.timestamp()) // 60 * 60
        assert done.windows and all(w.end_ts <= last_minute for w in done.windows)
        assert max(w.end_ts for w in done.windows) == last_minute  # the first game was still open
        raw = wh.candles(CANDLESTICKS_RAW.name, [day])
        assert done.candles == len(raw) > 0
        assert raw["end_period_ts"].max() <= pd.Timestamp(last_minute, unit="s", tz="UTC")
        assert set(raw["ingested_at"]) == {pd.Timestamp(now.replace(microsecond=0))}
        assert len(done.preview) == 5
        assert tuple(done.sample.columns) == CANDLESTICKS_RAW.column_names
        assert done.historical_fallbacks == () and done.archived_markets == 0

        # The same pull a day later takes every game whole and replaces the earlier windows' rows.
        later = now + timedelta(days=1)
        whole = _with_client(
            url, lambda c: ingest_raw_candles(wh, c, [day], now=later, preview_rows=5)
        )
        assert whole.candles > done.candles
        assert len(wh.candles(CANDLESTICKS_RAW.name, [day])) == whole.candles
    finally:
        wh.close()
