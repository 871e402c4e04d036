"""The candle assets end to end against the simulator, on DuckDB and Postgres."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from kalshi_pipeline.defs.candlesticks.assets import CANDLES_KEY, CANDLES_OP, RAW_KEY
from kalshi_pipeline.defs.candlesticks.clean import parse_raw
from kalshi_pipeline.defs.markets.assets import MARKETS_KEY
from kalshi_pipeline.kalshi import Candlestick, KalshiError
from kalshi_pipeline.kalshi.candles import CANDLE_VALUE_FIELDS
from kalshi_pipeline.warehouse.schema import CANDLESTICKS
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
    assert all(Decimal(0) <= v <= Decimal(1) for v in candles["yes_bid_close"].dropna())
    checks = checks_by_name(result)
    assert {name for _, name in checks} == {
        "schema",
        "markets_per_game",
        "settlement",
        "rejects",
        "minute_grid",
        "historical_fallbacks",
        "raw_clean_agree",
    }
    failed = {k: e.metadata for k, e in checks.items() if not e.passed}
    assert not failed
    grid = checks[("kalshi/candlesticks", "minute_grid")].metadata
    active = grid["active_minutes"].value
    assert isinstance(active, int) and active > 0 and grid["missing_minutes"].value == 0
    meta = materialization_metadata(result, "kalshi/candlesticks_raw")
    assert meta["candles"] == len(raw) and meta["api_requests"] > 0
    assert "open_time" in meta["window"] or ".." in meta["window"]
    agree = checks[("kalshi/candlesticks", "raw_clean_agree")].metadata
    assert agree["raw_rows"].value == len(raw) == agree["clean_rows"].value
    assert agree["games"].value == games and agree["games_disagreeing"].value == 0
    clean_meta = materialization_metadata(result, "kalshi/candlesticks")
    # Times, not Unix seconds: "2026-11-26T00:00Z .. 2026-11-26T03:11Z (end_period_ts inclusive)".
    assert re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\dZ|each market's open) \.\. \d{4}-\d\d-\d\dT\d\d:\d\dZ "
        r"\(end_period_ts inclusive\)",
        clean_meta["window"],
    )


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
    # (NOT VALID: existing rows are not checked, new ones are); the raw rows are stamped newer, as a new
    # pull stamps them, so the clean step validates them again rather than finding the date current.
    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE kalshi.candlesticks_raw SET ingested_at = ingested_at + interval '1 hour'"
        )
        conn.execute(
            sql.SQL(
                "ALTER TABLE kalshi.candlesticks ADD CONSTRAINT fail_late CHECK (end_period_ts < {}) "
                "NOT VALID"
            ).format(sql.Literal(last.to_pydatetime()))
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
        run_config={"ops": {CANDLES_OP: {"config": config}}},
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
        run_config={"ops": {CANDLES_OP: {"config": {"event_tickers": ["KXNBAGAME-XX"]}}}},
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


def _reference_parse_raw(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The row-by-row parse `parse_raw` replaced: `Candlestick.from_payload` per stored payload."""
    parsed, broken = [], []
    for row in raw.to_dict("records"):
        base = {
            **{
                k: row[k]
                for k in ("ticker", "event_ticker", "series_ticker", "game_date", "source")
            },
            "period_interval": int(row["period_interval"]),
            "end_period_ts": int(pd.Timestamp(row["end_period_ts"]).timestamp()),
        }
        try:
            candle = Candlestick.from_payload(
                json.loads(row["payload"]),
                ticker=row["ticker"],
                period_interval=int(row["period_interval"]),
                historical=row["source"] == "historical",
            )
        except (ValueError, TypeError, KalshiError) as exc:
            reason = f"unparseable payload: {exc}"
            broken.append({**base, **dict.fromkeys(CANDLE_VALUE_FIELDS), "reasons": reason})
            broken[-1]["payload"] = row["payload"]
            continue
        values = {c: getattr(candle, c) for c in CANDLE_VALUE_FIELDS}
        parsed.append({**base, **values, "payload": row["payload"]})
    cols = [c for c in CANDLESTICKS.column_names if c != "ingested_at"] + ["payload"]
    return pd.DataFrame(parsed, columns=cols), pd.DataFrame(broken, columns=[*cols, "reasons"])


def test_parse_raw_matches_row_by_row_parsing() -> None:
    live = {
        "end_period_ts": 1766188800,
        "price": {"open_dollars": "0.55", "high_dollars": "0.60", "low_dollars": "0.50",
                  "close_dollars": "0.58", "mean_dollars": "0.5612", "previous_dollars": "0.54"},
        "yes_bid": {"open_dollars": "0.54", "high_dollars": "0.58", "low_dollars": "0.50",
                    "close_dollars": "0.57"},
        "yes_ask": {"open_dollars": "0.56", "high_dollars": "0.60", "low_dollars": "0.52",
                    "close_dollars": "0.59"},
        "volume_fp": "10.00",
        "open_interest_fp": "100.00",
    }  # fmt: skip
    quiet = {**live, "price": {"previous_dollars": "0.58"}, "volume_fp": "0.00"}
    historical = {"end_period_ts": 1766188800, "price": {"close": "0.41"}, "volume": "1",
                  "open_interest": "2"}  # fmt: skip
    payloads = [
        (json.dumps(live), "live"),
        (json.dumps(quiet), "live"),
        (json.dumps(historical), "historical"),
        (json.dumps(historical), "live"),  # un-suffixed names are not read from live payloads
        (json.dumps({**live, "price": {"close_dollars": "abc"}}), "live"),
        (json.dumps({**live, "volume_fp": 5}), "live"),
        (json.dumps({**live, "yes_ask": [1]}), "live"),
        (json.dumps({**live, "end_period_ts": "1766188800"}), "live"),
        ("[1, 2]", "live"),
        ('{"end_period_ts": 1', "live"),
        ("", "historical"),
    ]
    n = len(payloads)
    raw = pd.DataFrame(
        {
            "ticker": [f"KXNBAGAME-25DEC19SASATL-{'ATL' if i % 2 else 'SAS'}" for i in range(n)],
            "event_ticker": ["KXNBAGAME-25DEC19SASATL"] * n,
            "series_ticker": ["KXNBAGAME"] * n,
            "game_date": [date(2025, 12, 19)] * n,
            "period_interval": [1] * n,
            "end_period_ts": pd.to_datetime(
                [1766188800 + 60 * i for i in range(n)], unit="s", utc=True
            ),
            "source": [s for _, s in payloads],
            "payload": [p for p, _ in payloads],
            "ingested_at": pd.Timestamp("2025-12-20", tz="UTC"),
        }
    )
    got_parsed, got_broken = parse_raw(raw)
    ref_parsed, ref_broken = _reference_parse_raw(raw)
    assert len(got_parsed) == 4 and len(got_broken) == 7
    pd.testing.assert_frame_equal(got_parsed, ref_parsed)
    pd.testing.assert_frame_equal(got_broken, ref_broken)
    empty_parsed, empty_broken = parse_raw(raw.head(0))
    pd.testing.assert_frame_equal(empty_parsed, _reference_parse_raw(raw.head(0))[0])
    assert list(empty_broken.columns) == list(ref_broken.columns) and empty_broken.empty
