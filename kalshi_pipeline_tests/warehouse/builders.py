"""Builders of warehouse DataFrames shared by the warehouse tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pandas as pd

from kalshi_pipeline.warehouse.schema import CANDLESTICKS, CANDLESTICKS_RAW, MARKETS

GAME_DATE = dt.date(2025, 12, 19)
T0 = 1766188800  # 2025-12-20 00:00:00 UTC, the first minute of a game
EVENT = "KXNBAGAME-25DEC19SASATL"


def candle_rows(
    ticker: str = f"{EVENT}-ATL",
    start_ts: int = T0,
    n: int = 3,
    *,
    event_ticker: str = EVENT,
    game_date: dt.date = GAME_DATE,
    close: Decimal | None = Decimal("0.5000"),
    **overrides: Any,
) -> pd.DataFrame:
    """`n` one-minute candles of one ticker with every clean-table column."""
    rows = []
    for i in range(n):
        row: dict[str, Any] = dict.fromkeys(CANDLESTICKS.column_names)
        del row["ingested_at"]
        row.update(
            ticker=ticker,
            event_ticker=event_ticker,
            series_ticker="KXNBAGAME",
            game_date=game_date,
            period_interval=1,
            end_period_ts=pd.Timestamp(start_ts + 60 * i, unit="s", tz="UTC"),
            price_open=Decimal("0.4900"),
            price_high=Decimal("0.5100"),
            price_low=Decimal("0.4800"),
            price_close=close,
            volume=Decimal("10.00"),
            open_interest=Decimal("1500.50"),
            source="historical",
        )
        row.update(overrides)
        rows.append(row)
    return pd.DataFrame(rows)


def raw_candle_rows(ticker: str = f"{EVENT}-ATL", start_ts: int = T0, n: int = 3) -> pd.DataFrame:
    """`n` raw candles of one ticker: the keys of `candle_rows` with an empty JSON payload."""
    keys = [c for c in CANDLESTICKS_RAW.column_names if c not in ("payload", "ingested_at")]
    rows = candle_rows(ticker, start_ts=start_ts, n=n)[keys]
    rows["payload"] = "{}"
    return rows


def market_rows(event_ticker: str = EVENT, **overrides: Any) -> pd.DataFrame:
    """The two markets (one per team) of a game."""
    rows = []
    for team in ("SAS", "ATL"):
        row: dict[str, Any] = dict.fromkeys(MARKETS.column_names)
        del row["ingested_at"]
        row.update(
            ticker=f"{event_ticker}-{team}",
            event_ticker=event_ticker,
            series_ticker="KXNBAGAME",
            game_date=GAME_DATE,
            away_team="SAS",
            home_team="ATL",
            team=team,
            title="San Antonio at Atlanta Winner?",
            status="active",
            open_time=pd.Timestamp("2025-12-18 15:00", tz="UTC"),
            close_time=pd.Timestamp("2025-12-20 03:00", tz="UTC"),
            scheduled_start=pd.Timestamp(T0, unit="s", tz="UTC"),
            scheduled_start_source="milestone",
            last_price_dollars=Decimal("0.5500"),
            volume=Decimal("123456.78"),
            open_interest=Decimal("2000"),
            source="live",
        )
        row.update(overrides)
        rows.append(row)
    return pd.DataFrame(rows)
