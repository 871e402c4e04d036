"""The closing minute: a finished game's candles over `market_window` add up to its market's volume exactly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kalshi_pipeline.defs.candlesticks.pull import market_window
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig


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
