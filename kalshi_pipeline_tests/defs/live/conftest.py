"""Builders for the live tests: a warehouse holding known games at known times."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline.warehouse.schema import CANDLESTICKS, MARKETS

TEAMS = ["BOS", "NYK", "LAL", "GSW", "MIA", "CHI", "DEN", "PHX", "SAS", "ATL", "DAL", "MIN"]


def event_ticker(game_date: date, away: str, home: str) -> str:
    """Build a KXNBAGAME event ticker (`KXNBAGAME-26JAN09BOSNYK`)."""
    return f"KXNBAGAME-{game_date.strftime('%y%b%d').upper()}{away}{home}"


def market_frame(
    game_date: date,
    away: str,
    home: str,
    start: datetime,
    *,
    status: str = "active",
    close_time: datetime | None = None,
    settlement_ts: datetime | None = None,
) -> pd.DataFrame:
    """The two markets (one per team) of one game, with every `kalshi.markets` column."""
    event = event_ticker(game_date, away, home)
    rows = []
    for team in (away, home):
        row: dict[str, Any] = dict.fromkeys(MARKETS.column_names)
        del row["ingested_at"]
        row.update(
            ticker=f"{event}-{team}",
            event_ticker=event,
            series_ticker="KXNBAGAME",
            game_date=game_date,
            away_team=away,
            home_team=home,
            team=team,
            title=f"{away} at {home} Winner?",
            status=status,
            open_time=pd.Timestamp(start - timedelta(days=2)),
            close_time=pd.Timestamp(close_time or start + timedelta(days=14)),
            scheduled_start=pd.Timestamp(start),
            scheduled_start_source="milestone",
            settlement_ts=pd.Timestamp(settlement_ts) if settlement_ts else None,
            volume=Decimal("100"),
            open_interest=Decimal("50"),
            source="live",
        )
        rows.append(row)
    return pd.DataFrame(rows)


def candle_frame(ticker: str, game_date: date, end_ts: list[int]) -> pd.DataFrame:
    """Clean 1-minute candles of one market ending at the given Unix seconds."""
    rows = []
    for ts in end_ts:
        row: dict[str, Any] = dict.fromkeys(CANDLESTICKS.column_names)
        del row["ingested_at"]
        row.update(
            ticker=ticker,
            event_ticker=ticker.rsplit("-", 1)[0],
            series_ticker="KXNBAGAME",
            game_date=game_date,
            period_interval=1,
            end_period_ts=pd.Timestamp(ts, unit="s", tz="UTC"),
            price_close=Decimal("0.5100"),
            volume=Decimal("1"),
            open_interest=Decimal("1"),
            source="live",
        )
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture
def duck_url(tmp_path: Path) -> str:
    """An embedded DuckDB warehouse URL in tmp_path."""
    return f"duckdb:///{tmp_path / 'wh.duckdb'}"


@pytest.fixture
def store(duck_url: str) -> Iterator[Callable[..., None]]:
    """Write markets/candle frames into the DuckDB warehouse (closing it again, as the sensor opens it)."""

    def write(
        *, markets: Sequence[pd.DataFrame] = (), candles: Sequence[pd.DataFrame] = ()
    ) -> None:
        wh = open_warehouse(duck_url)
        try:
            wh.ensure_schema()
            with wh.transaction() as tx:
                for df in markets:
                    tx.upsert("markets", df)
                for df in candles:
                    tx.upsert("candlesticks", df)
        finally:
            wh.close()

    yield write
