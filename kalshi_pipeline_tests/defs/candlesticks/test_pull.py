"""`market_window`, called directly: a stored market row and a pinned clock in, the candle window out."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pandas as pd
import pytest

from kalshi_pipeline.defs.candlesticks.pull import (
    RAW_ARROW_SCHEMA,
    MarketWindow,
    PulledMarket,
    market_window,
    raw_table,
)
from kalshi_pipeline.kalshi import KalshiProtocolError
from kalshi_pipeline.kalshi.candles import CandlePayloads

OPEN = 1_766_016_000  # 2025-12-18T00:00:00Z
TIP = 1_766_190_600  # 2025-12-20T00:30:00Z
NOW = TIP + 20 * 60 + 42  # 20 minutes and 42 seconds into the game
CUTOFF = TIP - 90 * 86_400


def ts(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def market(**overrides: Any) -> dict[str, Any]:
    """A `kalshi.markets` row of a live game (close time still the scheduled one, two weeks out)."""
    row: dict[str, Any] = {
        "ticker": "KXNBAGAME-25DEC19SASATL-ATL",
        "event_ticker": "KXNBAGAME-25DEC19SASATL",
        "series_ticker": "KXNBAGAME",
        "game_date": date(2025, 12, 19),
        "open_time": ts(OPEN),
        "close_time": ts(TIP + 14 * 86_400),
        "settlement_ts": None,
        "source": "live",
    }
    row.update(overrides)
    return row


def test_an_open_market_is_pulled_from_its_open_to_the_last_whole_minute() -> None:
    window = market_window(market(), now_ts=NOW, cutoff_ts=CUTOFF)
    assert window == MarketWindow(
        ticker="KXNBAGAME-25DEC19SASATL-ATL",
        event_ticker="KXNBAGAME-25DEC19SASATL",
        series_ticker="KXNBAGAME",
        game_date=date(2025, 12, 19),
        start_ts=OPEN,
        end_ts=TIP + 20 * 60,
        archived=False,
    )
    assert not window.empty


def test_a_finished_market_ends_at_the_earliest_of_close_and_settlement() -> None:
    close = TIP + 2 * 3600 + 90
    closed = market_window(market(close_time=ts(close)), now_ts=NOW + 86_400, cutoff_ts=CUTOFF)
    # The candle holding the last partial minute (it ends after the close) is part of the window.
    assert closed.end_ts == close // 60 * 60 + 60
    settled = market_window(
        market(close_time=ts(close), settlement_ts=ts(close - 600)),
        now_ts=NOW + 86_400,
        cutoff_ts=CUTOFF,
    )
    assert settled.end_ts == (close - 600) // 60 * 60 + 60
    on_the_minute = market_window(
        market(close_time=ts(close // 60 * 60)), now_ts=NOW + 86_400, cutoff_ts=CUTOFF
    )
    assert on_the_minute.end_ts == close // 60 * 60


def test_an_incremental_pull_starts_at_start_ts_but_never_before_the_open() -> None:
    assert market_window(market(), now_ts=NOW, cutoff_ts=CUTOFF, start_ts=TIP).start_ts == TIP
    early = market_window(market(), now_ts=NOW, cutoff_ts=CUTOFF, start_ts=OPEN - 3600)
    assert early.start_ts == OPEN
    # Asking from after the last whole minute leaves nothing to pull.
    late = market_window(market(), now_ts=NOW, cutoff_ts=CUTOFF, start_ts=NOW)
    assert late.empty and late.end_ts < late.start_ts


def test_markets_settled_before_the_cutoff_or_found_in_history_are_archived() -> None:
    settled = TIP + 3 * 3600
    old = market(close_time=ts(settled), settlement_ts=ts(settled))
    assert market_window(old, now_ts=NOW, cutoff_ts=settled + 1).archived
    assert not market_window(old, now_ts=NOW, cutoff_ts=settled).archived  # settled at the cutoff
    assert market_window(market(source="historical"), now_ts=NOW, cutoff_ts=CUTOFF).archived


def test_unix_seconds_and_missing_times_are_accepted() -> None:
    row = market(open_time=OPEN, close_time=float("nan"), settlement_ts=pd.NaT)
    window = market_window(row, now_ts=NOW, cutoff_ts=CUTOFF)
    assert (window.start_ts, window.end_ts, window.archived) == (OPEN, NOW // 60 * 60, False)
    no_open = market_window(market(open_time=None), now_ts=NOW, cutoff_ts=CUTOFF)
    assert no_open.start_ts == 0


def _window(ticker: str) -> MarketWindow:
    return MarketWindow(
        ticker, "KXNBAGAME-25DEC19SASATL", "KXNBAGAME", date(2025, 12, 19), 0, 10**10, False
    )


def test_raw_table_keeps_payloads_as_received_one_row_per_market_minute() -> None:
    atl, sas = "KXNBAGAME-25DEC19SASATL-ATL", "KXNBAGAME-25DEC19SASATL-SAS"
    first = [{"end_period_ts": TIP, "volume_fp": "1.00", "yes_bid": {"close_dollars": "0.5500"}}]
    later = [
        {"end_period_ts": TIP, "volume_fp": "2.00", "note": "é"},
        {"end_period_ts": TIP + 60, "volume_fp": "3.00"},
    ]

    def pulled(ticker: str, items: list[dict[str, Any]], historical: bool) -> PulledMarket:
        block = CandlePayloads.from_items(
            items, ticker=ticker, period_interval=1, historical=historical
        )
        return PulledMarket(_window(ticker), block)

    table = raw_table(
        [pulled(atl, first, False), pulled(sas, first, True), pulled(atl, later, False)], NOW
    )
    rows = table.to_pylist()
    assert table.schema == RAW_ARROW_SCHEMA and len(rows) == 3
    by_key = {(r["ticker"], int(r["end_period_ts"].timestamp())): r for r in rows}
    # The later block of a market given twice wins minute by minute.
    assert json.loads(by_key[(atl, TIP)]["payload"]) == later[0]
    assert json.loads(by_key[(atl, TIP + 60)]["payload"]) == later[1]
    assert (
        by_key[(sas, TIP)]["payload"]
        == f'{{"end_period_ts":{TIP},"volume_fp":"1.00","yes_bid":{{"close_dollars":"0.5500"}}}}'
    )
    assert by_key[(sas, TIP)]["source"] == "historical"
    assert by_key[(atl, TIP)]["source"] == "live"
    assert {r["game_date"] for r in rows} == {date(2025, 12, 19)}
    assert {int(r["ingested_at"].timestamp()) for r in rows} == {NOW}
    assert raw_table([], NOW).num_rows == 0


def test_a_candle_without_an_integer_end_time_is_a_protocol_error() -> None:
    for item in ({"volume_fp": "1.00"}, {"end_period_ts": "60"}, ["x"]):
        with pytest.raises(KalshiProtocolError, match=r"end_period_ts|candlestick"):
            CandlePayloads.from_items([item], ticker="T", period_interval=1, historical=False)
