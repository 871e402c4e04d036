"""`clean_candles` and `candle_scope` called directly: stored raw payloads and a pinned clock in, tables out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kalshi_pipeline.defs.candlesticks.clean import clean_candles
from kalshi_pipeline.defs.candlesticks.completeness import CLOSE_GRACE_S
from kalshi_pipeline.defs.candlesticks.scope import candle_scope
from kalshi_pipeline.warehouse import Warehouse, open_warehouse
from kalshi_pipeline.warehouse.schema import CANDLESTICKS_RAW
from kalshi_pipeline_tests.warehouse.builders import EVENT, GAME_DATE, T0, market_rows

ATL, SAS = f"{EVENT}-ATL", f"{EVENT}-SAS"
CLOSE = T0 + 15 * 60 + CLOSE_GRACE_S  # the active window ends 15 minutes after tip-off
MINUTES = [T0 + 60 * i for i in range(1, 16)]
NOW = datetime(2025, 12, 20, 5, 0, 7, 900_000, tzinfo=UTC)


def payload(end_ts: int, **overrides: Any) -> str:
    """A live-format candle payload (fixed-point dollar strings), changed by `overrides`."""
    body: dict[str, Any] = {
        "end_period_ts": end_ts,
        "price": {"open_dollars": "0.55", "high_dollars": "0.60", "low_dollars": "0.50",
                  "close_dollars": "0.58", "mean_dollars": "0.5612", "previous_dollars": "0.54"},
        "yes_bid": {"open_dollars": "0.54", "high_dollars": "0.58", "low_dollars": "0.50",
                    "close_dollars": "0.57"},
        "yes_ask": {"open_dollars": "0.56", "high_dollars": "0.60", "low_dollars": "0.52",
                    "close_dollars": "0.59"},
        "volume_fp": "10.00",
        "open_interest_fp": "100.00",
    }  # fmt: skip
    body.update(overrides)
    return json.dumps(body)


def raw_rows(ticker: str, payloads: dict[int, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "ticker": ticker,
                "event_ticker": EVENT,
                "series_ticker": "KXNBAGAME",
                "game_date": GAME_DATE,
                "period_interval": 1,
                "end_period_ts": pd.Timestamp(ts, unit="s", tz="UTC"),
                "source": "live",
                "payload": text,
            }
            for ts, text in payloads.items()
        ],
        columns=[c for c in CANDLESTICKS_RAW.column_names if c != "ingested_at"],
    )


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Warehouse]:
    """A DuckDB warehouse holding one game's markets and raw candles: SAS has two bad minutes."""
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    warehouse.ensure_schema()
    warehouse.upsert("markets", market_rows(close_time=pd.Timestamp(CLOSE, unit="s", tz="UTC")))
    sas = {ts: payload(ts) for ts in MINUTES}
    sas[MINUTES[3]] = payload(MINUTES[3], price={"high_dollars": "1.50"})
    sas[MINUTES[4]] = '{"end_period_ts": 1'
    with warehouse.transaction() as tx:
        tx.upsert("candlesticks_raw", raw_rows(ATL, {ts: payload(ts) for ts in MINUTES}))
        tx.upsert("candlesticks_raw", raw_rows(SAS, sas))
    yield warehouse
    warehouse.close()


def test_valid_and_rejected_candles_are_stored_with_the_pinned_time(wh: Warehouse) -> None:
    done = clean_candles(wh, [GAME_DATE], now=NOW, preview_rows=3)
    assert (done.games, done.markets, done.raw) == (1, 2, 30)
    assert (done.valid, done.rejected) == (28, 2)
    assert done.reject_fraction == pytest.approx(2 / 30)
    assert (done.window_start, done.window_end) == (0, MINUTES[-1])
    assert done.reason_counts.keys() >= {"price outside [0, 1]"}
    assert any(r.startswith("unparseable payload") for r in done.reason_counts)
    assert list(done.top_reasons(1).values()) == [1]
    assert len(done.preview) == 3 and done.preview["end_period_ts"].iloc[0] == MINUTES[0]
    (game,) = done.completeness
    assert (game.event_ticker, game.active_minutes, game.missing_minutes) == (EVENT, 30, 2)
    assert game.first_missing_ts == MINUTES[3]
    assert len(done.sample) == 28 and done.sample["ingested_at"].nunique() == 1

    clean = wh.candles("candlesticks", [GAME_DATE])
    rejected = wh.candles("candlesticks_rejected", [GAME_DATE])
    assert len(clean) == 28 and set(clean["source"]) == {"live"}
    stamped = pd.Timestamp(NOW.replace(microsecond=0))
    assert set(clean["ingested_at"]) == {stamped} and set(rejected["ingested_at"]) == {stamped}
    assert list(rejected["end_period_ts"]) == [
        pd.Timestamp(MINUTES[3], unit="s", tz="UTC"),
        pd.Timestamp(MINUTES[4], unit="s", tz="UTC"),
    ]
    assert rejected["payload"].iloc[1] == '{"end_period_ts": 1'

    again = clean_candles(wh, [GAME_DATE], now=NOW + timedelta(hours=1), preview_rows=3)
    assert (again.valid, again.rejected) == (28, 2)
    assert len(wh.candles("candlesticks", [GAME_DATE])) == 28


def test_an_incremental_run_replaces_only_its_window(wh: Warehouse) -> None:
    clean_candles(wh, [GAME_DATE], now=NOW, preview_rows=3)
    later = NOW + timedelta(hours=1)
    start = MINUTES[10]
    done = clean_candles(
        wh, [GAME_DATE], now=later, start_ts=start, preview_rows=3, event_tickers=[EVENT.lower()]
    )
    assert (done.raw, done.valid, done.rejected) == (10, 10, 0)
    assert (done.window_start, done.window_end) == (start, MINUTES[-1])
    clean = wh.candles("candlesticks", [GAME_DATE])
    stamps = clean.groupby(clean["end_period_ts"] >= pd.Timestamp(start, unit="s", tz="UTC"))
    by_side = {bool(k): set(g["ingested_at"]) for k, g in stamps}
    assert by_side == {
        False: {pd.Timestamp(NOW.replace(microsecond=0))},
        True: {pd.Timestamp(later.replace(microsecond=0))},
    }
    assert len(wh.candles("candlesticks_rejected", [GAME_DATE])) == 2  # before the window: kept


def test_scope_narrows_to_the_requested_games_and_names_unknown_ones(wh: Warehouse) -> None:
    everything = candle_scope(wh, [GAME_DATE])
    assert everything.games == 1 and everything.allowed_tickers == {ATL, SAS}
    narrowed = candle_scope(wh, [GAME_DATE], [f" {EVENT.lower()} "])
    assert narrowed.event_tickers == {EVENT} and len(narrowed.scoped_on(GAME_DATE)) == 2
    assert narrowed.scoped_on(GAME_DATE + timedelta(days=1)).empty
    with pytest.raises(ValueError, match=r"\['KXNBAGAME-XX'\] are not games of 2025-12-19"):
        candle_scope(wh, [GAME_DATE], ["KXNBAGAME-XX"])
    with pytest.raises(ValueError, match="KXNBAGAME-XX"):
        clean_candles(wh, [GAME_DATE], now=NOW, event_tickers=["KXNBAGAME-XX"], preview_rows=3)
    assert wh.table_counts()["candlesticks"] == 0


def test_raw_and_clean_tables_agree_per_game_and_a_lost_row_shows(wh: Warehouse) -> None:
    done = clean_candles(wh, [GAME_DATE], now=NOW, preview_rows=3)
    assert done.agreement.to_dict("records") == [
        {"event_ticker": EVENT, "raw": 30, "candles": 28, "rejected": 2}
    ]
    assert done.disagreeing_games.empty
    # A clean row lost behind the pipeline's back is caught on the next (incremental) run.
    wh.execute(
        "DELETE FROM kalshi.candlesticks WHERE ticker = %s AND end_period_ts = %s",
        [ATL, pd.Timestamp(MINUTES[0], unit="s", tz="UTC").to_pydatetime()],
    )
    again = clean_candles(wh, [GAME_DATE], now=NOW, start_ts=MINUTES[-1], preview_rows=3)
    assert again.disagreeing_games.to_dict("records") == [
        {"event_ticker": EVENT, "raw": 30, "candles": 27, "rejected": 2}
    ]


def test_the_preview_shows_the_games_busiest_minutes(tmp_path: Path) -> None:
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'busy.duckdb'}")
    try:
        warehouse.upsert("markets", market_rows(close_time=pd.Timestamp(CLOSE, unit="s", tz="UTC")))
        quiet = {ts: payload(ts, volume_fp="0.00") for ts in MINUTES}
        busy = {MINUTES[9]: "250.00", MINUTES[4]: "900.00", MINUTES[12]: "75.50"}
        for ts, volume in busy.items():
            quiet[ts] = payload(ts, volume_fp=volume)
        warehouse.upsert("candlesticks_raw", raw_rows(ATL, quiet))
        done = clean_candles(warehouse, [GAME_DATE], now=NOW, preview_rows=2)
        # The two busiest minutes, in time order (not the first, quiet minutes).
        assert list(done.preview["end_period_ts"]) == [MINUTES[4], MINUTES[9]]
        assert [Decimal(str(v)) for v in done.preview["volume"]] == [Decimal(900), Decimal(250)]
    finally:
        warehouse.close()
