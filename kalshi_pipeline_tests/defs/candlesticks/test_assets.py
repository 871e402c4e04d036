"""The candle assets end to end against the simulator, on DuckDB and Postgres."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
import pytest

from kalshi_pipeline.defs.candlesticks.assets import CANDLES_KEY, RAW_KEY
from kalshi_pipeline.defs.markets.assets import MARKETS_KEY
from kalshi_pipeline_tests.defs.markets.helpers import (
    SimDates,
    checks_by_name,
    materialization_metadata,
    materialize,
    sim_dates,
    table,
)


@pytest.fixture(scope="module")
def dates(simulator: Any) -> SimDates:
    return sim_dates(simulator.base_url)


def _stable(df: pd.DataFrame) -> pd.DataFrame:
    """Drop the ingestion time, which legitimately changes on a re-run."""
    return df.drop(columns=["ingested_at"]).reset_index(drop=True)


def _assert_clean_run(result: Any, url: str, games: int) -> None:
    markets = table(url, "markets", "ticker")
    raw = table(url, "candlesticks_raw")
    candles = table(url, "candlesticks")
    assert markets["event_ticker"].nunique() == games
    assert len(raw) > 0 and len(candles) == len(raw)
    assert set(candles["ticker"]) == set(markets["ticker"])
    assert table(url, "candlesticks_rejected").empty
    assert all(isinstance(v, Decimal) for v in candles["volume"])
    assert candles["yes_bid_close"].dropna().map(lambda v: Decimal(0) <= v <= Decimal(1)).all()
    checks = checks_by_name(result)
    assert {name for _, name in checks} == {"schema", "markets_per_game", "rejects", "minute_grid"}
    failed = {k: e.metadata for k, e in checks.items() if not e.passed}
    assert not failed
    grid = checks[("kalshi/candlesticks", "minute_grid")].metadata
    assert grid["active_minutes"].value > 0 and grid["missing_minutes"].value == 0
    meta = materialization_metadata(result, "kalshi/candlesticks_raw")
    assert meta["candles"] == len(raw) and meta["api_requests"] > 0
    assert "open_time" in meta["window"] or ".." in meta["window"]


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_live_date_end_to_end(
    simulator: Any, dates: SimDates, tmp_path: Any, fresh_pg_url: str, backend: str
) -> None:
    day = dates.finished_live()
    url = f"duckdb:///{tmp_path}/wh.duckdb" if backend == "duckdb" else fresh_pg_url
    result = materialize(simulator.base_url, url, partition_key=day.isoformat())
    _assert_clean_run(result, url, dates.games[day])
    raw = table(url, "candlesticks_raw")
    assert set(raw["source"]) == {"live"}
    assert raw["payload"].str.contains('"volume_fp"').all()


def test_archived_date_uses_historical_candles(
    simulator: Any, dates: SimDates, tmp_path: Any
) -> None:
    day = dates.archived()
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    result = materialize(simulator.base_url, url, partition_key=day.isoformat())
    _assert_clean_run(result, url, dates.games[day])
    raw = table(url, "candlesticks_raw")
    assert set(raw["source"]) == {"historical"}
    # Historical payloads use un-suffixed names; stored exactly as received.
    assert not raw["payload"].str.contains('"volume_fp"').any()
    assert set(table(url, "candlesticks")["source"]) == {"historical"}


def test_rerun_leaves_identical_rows(simulator: Any, dates: SimDates, tmp_path: Any) -> None:
    day = dates.finished_live()
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    materialize(simulator.base_url, url, partition_key=day.isoformat())
    before = {t: _stable(table(url, t)) for t in ("candlesticks_raw", "candlesticks")}
    materialize(simulator.base_url, url, partition_key=day.isoformat())
    for name, df in before.items():
        pd.testing.assert_frame_equal(_stable(table(url, name)), df)


def test_failed_write_rolls_back_to_previous_state(
    simulator: Any, dates: SimDates, fresh_pg_url: str
) -> None:
    day = dates.finished_live()
    materialize(simulator.base_url, fresh_pg_url, partition_key=day.isoformat())
    before = _stable(table(fresh_pg_url, "candlesticks"))
    last = before["end_period_ts"].max()
    # A real constraint the re-run violates after it has already deleted the partition's rows
    # (NOT VALID: existing rows are not checked, new ones are).
    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE kalshi.candlesticks ADD CONSTRAINT fail_late CHECK (end_period_ts < %s) "
            "NOT VALID".replace("%s", f"'{last.isoformat()}'::timestamptz")
        )
    result = materialize(
        simulator.base_url,
        fresh_pg_url,
        partition_key=day.isoformat(),
        selection=[CANDLES_KEY],
        raise_on_error=False,
    )
    assert not result.success
    pd.testing.assert_frame_equal(_stable(table(fresh_pg_url, "candlesticks")), before)
    assert table(fresh_pg_url, "candlesticks_rejected").empty


def test_single_run_backfill_over_a_range(simulator: Any, dates: SimDates, tmp_path: Any) -> None:
    days = dates.consecutive_live(2)
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    result = materialize(
        simulator.base_url, url, partition_range=(days[0].isoformat(), days[-1].isoformat())
    )
    assert result.success
    markets = table(url, "markets", "ticker")
    assert set(markets["game_date"]) == set(days)
    assert markets["event_ticker"].nunique() == sum(dates.games[d] for d in days)
    candles = table(url, "candlesticks")
    assert set(candles["game_date"]) == set(days)
    assert materialization_metadata(result, "kalshi/candlesticks")["dates"] == (
        f"{days[0]}..{days[-1]}"
    )
    assert all(e.passed for e in result.get_asset_check_evaluations())


def test_restricted_incremental_run_touches_only_its_game(
    simulator: Any, dates: SimDates, tmp_path: Any
) -> None:
    day = dates.finished_live()
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    materialize(simulator.base_url, url, partition_key=day.isoformat())
    before = _stable(table(url, "candlesticks"))
    game = sorted(before["event_ticker"].unique())[0]
    start = before[before["event_ticker"] == game]["end_period_ts"].iloc[-20]
    config = {"event_tickers": [game], "start_ts": int(start.timestamp())}
    result = materialize(
        simulator.base_url,
        url,
        partition_key=day.isoformat(),
        selection=[RAW_KEY, CANDLES_KEY],
        run_config={
            "ops": {
                "kalshi__candlesticks_raw": {"config": config},
                "kalshi__candlesticks": {"config": config},
            }
        },
    )
    meta = materialization_metadata(result, "kalshi/candlesticks")
    assert meta["games"] == 1 and 0 < meta["candles"] <= 40
    pd.testing.assert_frame_equal(_stable(table(url, "candlesticks")), before)


def test_unknown_event_ticker_is_a_clear_error(
    simulator: Any, dates: SimDates, tmp_path: Any
) -> None:
    day = dates.finished_live()
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    materialize(simulator.base_url, url, partition_key=day.isoformat(), selection=[MARKETS_KEY])
    result = materialize(
        simulator.base_url,
        url,
        partition_key=day.isoformat(),
        selection=[RAW_KEY],
        run_config={
            "ops": {"kalshi__candlesticks_raw": {"config": {"event_tickers": ["KXNBAGAME-XX"]}}}
        },
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "KXNBAGAME-XX" in str(failure.event_specific_data.error)  # type: ignore[union-attr]


def test_stale_live_row_of_an_archived_market_is_pulled_from_historical(
    simulator: Any, dates: SimDates, tmp_path: Any
) -> None:
    day = dates.archived()
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    materialize(simulator.base_url, url, partition_key=day.isoformat(), selection=[MARKETS_KEY])
    from kalshi_pipeline.warehouse import open_warehouse

    wh = open_warehouse(url)
    try:
        # As if discovered while the game was live, long before it was archived.
        wh.execute("UPDATE kalshi.markets SET source = 'live', settlement_ts = NULL")
    finally:
        wh.close()
    result = materialize(
        simulator.base_url, url, partition_key=day.isoformat(), selection=[RAW_KEY, CANDLES_KEY]
    )
    meta = materialization_metadata(result, "kalshi/candlesticks_raw")
    assert meta["historical_fallbacks"] == 2 * dates.games[day]
    raw = table(url, "candlesticks_raw")
    assert len(raw) > 0 and set(raw["source"]) == {"historical"}


def test_date_without_games_materializes_empty(simulator: Any, tmp_path: Any) -> None:
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    result = materialize(simulator.base_url, url, partition_key="2025-07-15")
    assert result.success
    assert materialization_metadata(result, "kalshi/markets")["games"] == 0
    assert materialization_metadata(result, "kalshi/candlesticks")["candles"] == 0
    assert table(url, "candlesticks").empty
