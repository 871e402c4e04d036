"""The closing minute: a finished game's candles add up to its market's volume exactly.

Over REST through `market_window`, and in the warehouse after the real assets pulled the game's date.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kalshi_pipeline.defs.candlesticks.pull import market_window
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline_tests.defs.markets.helpers import materialize


def test_a_game_closing_mid_minute_keeps_its_closing_minute(start_simulator: Any) -> None:
    now = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    sim = start_simulator(now=now)
    world = sim.app.state.world
    now_s = int(now.timestamp())
    # A finished, still-live (not archived) game whose closing print (at the final buzzer) falls in the
    # last partial minute before its mid-minute close: the candle holding it ends after `close_time`.
    game = next(
        g
        for g in world.games
        if g.settled_s < now_s
        and not world.is_archived(g, now_s)
        and g.close_s % 60
        and g.end_s // 60 == g.close_s // 60
    )
    ticker = game.home_ticker
    config = KalshiConfig(base_url=sim.base_url, rate_limit_tier="off")

    async def go() -> tuple[Any, list[Any]]:
        async with KalshiClient(config) as client:
            market = await client.get_market(ticker)
            row = {
                "ticker": market.ticker,
                "event_ticker": market.event_ticker,
                "series_ticker": game.series.series_ticker,
                "game_date": game.game_date,
                "open_time": market.open_time,
                "close_time": market.close_time,
                "settlement_ts": market.settlement_ts,
                "source": "live",
            }
            window = market_window(row, now_ts=now_s, cutoff_ts=world.cutoff_s(now_s))
            candles = await client.get_market_candlesticks(
                game.series.series_ticker, ticker, window.start_ts, window.end_ts
            )
            return market, [window, candles]

    market, (window, candles) = asyncio.run(go())
    close_s = int(market.close_time.timestamp())
    assert window.end_ts == close_s // 60 * 60 + 60 > close_s
    assert candles[-1].end_period_ts == window.end_ts
    assert candles[-1].volume > 0, "the closing print lives in the candle ending after the close"
    assert sum((c.volume for c in candles), Decimal(0)) == market.volume_fp
    # The former window (ending at the close rounded down) misses it.
    assert sum((c.volume for c in candles if c.end_period_ts <= close_s // 60 * 60), Decimal(0)) < (
        market.volume_fp or Decimal(0)
    )


@pytest.mark.parametrize(
    "dialect", ["duckdb", pytest.param("postgres", marks=pytest.mark.integration)]
)
def test_a_finished_games_stored_minute_volumes_add_up_to_its_markets_volume(
    dialect: str, start_simulator: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    now = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    sim = start_simulator(now=now)
    world = sim.app.state.world
    now_s = int(now.timestamp())
    # A finished, still-live game that closed mid-minute; its date's games are all finished.
    game = next(
        g
        for g in world.games
        if g.settled_s < now_s and not world.is_archived(g, now_s) and g.close_s % 60
    )
    url = (
        f"duckdb:///{tmp_path / 'wh.duckdb'}"
        if dialect == "duckdb"
        else request.getfixturevalue("fresh_pg_url")
    )
    config = KalshiConfig(base_url=sim.base_url, rate_limit_tier="off")

    async def exchange() -> tuple[dict[str, Decimal], list[Any]]:
        async with KalshiClient(config) as client:
            event = await client.get_event(game.event_ticker, with_nested_markets=True)
            volumes = {m.ticker: m.volume_fp or Decimal(0) for m in event.markets}
            trades = [t async for t in client.iter_trades(game.home_ticker)]
            trades += [t async for t in client.iter_trades(game.away_ticker)]
            return volumes, trades

    volumes, trades = asyncio.run(exchange())
    close_s = game.close_s
    partial = [t for t in trades if close_s // 60 * 60 < t.created_time.timestamp() <= close_s]
    assert partial, "the game traded in its last partial minute, before the mid-minute close"
    assert all(v > 0 for v in volumes.values())

    materialize(sim.base_url, url, partition_key=game.game_date.isoformat())
    wh = open_warehouse(url)
    try:
        sums = wh.query_df(
            "SELECT ticker, sum(volume) AS volume FROM kalshi.candlesticks "
            "WHERE period_interval = 1 AND game_date = %s GROUP BY ticker ORDER BY ticker",
            [game.game_date],
        )
        closing = wh.query_df(
            "SELECT ticker, volume FROM kalshi.candlesticks "
            "WHERE period_interval = 1 AND event_ticker = %s AND end_period_ts = %s",
            [game.event_ticker, pd.Timestamp(close_s // 60 * 60 + 60, unit="s", tz="UTC")],
        )
        stored = wh.markets([game.game_date])
    finally:
        wh.close()
    summed = dict(zip(sums.ticker, sums.volume, strict=True))
    assert {t: summed.get(t) for t in volumes} == volumes
    # The partial minute's trades are in the candle ending after the close.
    in_partial = {t.ticker for t in partial}
    assert {t for t, v in zip(closing.ticker, closing.volume, strict=True) if v > 0} >= in_partial
    # Every market of the date (all finished) adds up to the volume the markets table stored.
    assert len(stored) > 2 and set(stored.status) <= {"finalized", "settled", "determined"}
    assert {t: summed.get(t, Decimal(0)) for t in stored.ticker} == dict(
        zip(stored.ticker, stored.volume, strict=True)
    )
