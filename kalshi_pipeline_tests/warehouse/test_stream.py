"""Tests of the stream writer on real PostgreSQL and DuckDB: tables, batching and the REST-wins rule."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline.warehouse.errors import WarehouseDataError
from kalshi_pipeline.warehouse.stream import StreamWriter

T = "KXNBAGAME-25DEC19SASATL-ATL"
END = pd.Timestamp("2025-12-20T01:01:00Z")


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.integration), "duckdb"])
def wh(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_pg_url")
    else:
        url = f"duckdb:///{tmp_path / 'stream.duckdb'}"
    warehouse = open_warehouse(url)
    warehouse.ensure_schema()
    yield warehouse
    warehouse.close()


def candle(end: pd.Timestamp, close: str, *, complete: bool = True) -> dict[str, Any]:
    price = Decimal(close)
    return {
        "ticker": T,
        "event_ticker": "KXNBAGAME-25DEC19SASATL",
        "series_ticker": "KXNBAGAME",
        "game_date": dt.date(2025, 12, 19),
        "period_interval": 1,
        "end_period_ts": end,
        **{f"price_{k}": price for k in ("open", "high", "low", "close", "mean")},
        "price_previous": None,
        **{f"yes_bid_{k}": Decimal("0.40") for k in ("open", "high", "low", "close")},
        **{f"yes_ask_{k}": Decimal("0.60") for k in ("open", "high", "low", "close")},
        "volume": Decimal("3.00"),
        "open_interest": Decimal("10.00"),
        "complete": complete,
        "last_event_ts": end - pd.Timedelta(seconds=5),
    }


def test_stream_tables_exist_with_exact_types(wh: Any) -> None:
    writer = StreamWriter(wh, max_rows=3, max_delay_s=60)
    writer.add(
        "ticks",
        {
            "ticker": T,
            "ts": pd.Timestamp("2025-12-20T01:00:30.123Z"),
            "received_at": pd.Timestamp("2025-12-20T01:00:30.150Z"),
            "price": Decimal("0.5100"),
            "yes_bid": Decimal("0.5000"),
            "yes_ask": Decimal("0.5200"),
            "yes_bid_size": Decimal("12.50"),
            "yes_ask_size": Decimal("3.00"),
            "volume": Decimal("1000.25"),
            "open_interest": Decimal("400.00"),
        },
    )
    writer.add(
        "trades",
        {
            "trade_id": "t-1",
            "ticker": T,
            "ts": pd.Timestamp("2025-12-20T01:00:30.123Z"),
            "received_at": pd.Timestamp("2025-12-20T01:00:30.140Z"),
            "yes_price": Decimal("0.5100"),
            "no_price": Decimal("0.4900"),
            "count": Decimal("2.50"),
            "taker_outcome_side": "yes",
            "taker_book_side": "bid",
            "is_block_trade": False,
            "source": "ws",
        },
    )
    assert not writer.due()
    writer.add(
        "stream_events",
        {
            "event_id": "e-1",
            "run_id": "r",
            "event_at": pd.Timestamp("2025-12-20T01:00:31Z"),
            "kind": "gap",
            "connection": 2,
            "channel": "trade",
            "sid": 2,
            "market_tickers": T,
            "since_ts": pd.Timestamp("2025-12-20T01:00:00Z"),
            "until_ts": None,
            "code": None,
            "detail": "seq gap",
        },
    )
    assert writer.due()
    assert writer.flush() == {"ticks": 1, "trades": 1, "stream_events": 1}
    assert writer.buffered == 0 and writer.flush() == {}
    tick = wh.query_df("SELECT * FROM kalshi.ticks")
    assert tick.loc[0, "yes_bid_size"] == Decimal("12.50") and tick.loc[0, "price"] == Decimal(
        "0.51"
    )
    assert tick.loc[0, "ts"] == pd.Timestamp("2025-12-20T01:00:30.123Z")
    trades = wh.query_df("SELECT * FROM kalshi.trades")
    assert trades.loc[0, "count"] == Decimal("2.5") and not trades.loc[0, "is_block_trade"]
    event = wh.query_df("SELECT * FROM kalshi.stream_events")
    assert event.loc[0, "kind"] == "gap" and pd.isna(event.loc[0, "until_ts"])


def test_ws_candles_never_overwrite_final_rest_candles(wh: Any) -> None:
    writer = StreamWriter(wh)
    writer.add_candle(candle(END, "0.5000"))
    writer.add_candle(candle(END + pd.Timedelta(minutes=1), "0.5100", complete=False))
    writer.flush()
    rows = wh.query_df(
        "SELECT ticker, end_period_ts, price_close, source FROM kalshi.candlesticks ORDER BY 2"
    )
    assert list(rows["source"]) == ["ws", "ws"] and rows.loc[0, "price_close"] == Decimal("0.5")

    # REST writes the final first minute (after it closed) and a partial second one (before it closed).
    rest = wh.query_df("SELECT * FROM kalshi.candlesticks ORDER BY end_period_ts")
    rest["source"] = "live"
    rest["price_close"] = [Decimal("0.4900"), Decimal("0.5050")]
    rest["ingested_at"] = [END + pd.Timedelta(seconds=3), END + pd.Timedelta(seconds=30)]
    with wh.transaction() as tx:
        tx.upsert("candlesticks", rest)

    writer.add_candle(candle(END, "0.5500"))
    writer.add_candle(candle(END + pd.Timedelta(minutes=1), "0.5200"))
    writer.flush()
    rows = wh.query_df(
        "SELECT end_period_ts, price_close, source FROM kalshi.candlesticks ORDER BY 1"
    )
    assert list(rows["source"]) == ["live", "ws"], (
        "the final REST candle stays; the partial one is replaced"
    )
    assert list(rows["price_close"]) == [Decimal("0.49"), Decimal("0.52")]
    # The stream's own version is kept for the audit.
    ws_rows = wh.query_df(
        "SELECT end_period_ts, price_close, complete FROM kalshi.candlesticks_ws ORDER BY 1"
    )
    assert list(ws_rows["price_close"]) == [Decimal("0.55"), Decimal("0.52")]
    assert list(ws_rows["complete"]) == [True, True]


def test_bad_rows_are_refused_and_kept_buffered(wh: Any) -> None:
    writer = StreamWriter(wh)
    with pytest.raises(WarehouseDataError, match=r"StreamWriter\.add takes"):
        writer.add("markets", {})
    writer.add("ticks", {"ticker": T})
    with pytest.raises(WarehouseDataError, match="lack columns"):
        writer.flush()
    assert writer.buffered == 1
