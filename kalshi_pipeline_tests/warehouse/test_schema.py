"""The table specs and migrations: contract columns, unique ordered versions, DDL for both dialects."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pandas as pd

from kalshi_pipeline.kalshi.candles import CANDLE_VALUE_FIELDS
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline.warehouse.schema import (
    CANDLE_VALUE_COLUMNS,
    CANDLESTICKS,
    CANDLESTICKS_REJECTED,
    CANDLESTICKS_WS,
    MARKETS,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    TABLES,
    create_table_sql,
)
from kalshi_pipeline_tests.warehouse.builders import GAME_DATE, market_rows


def test_migrations_have_unique_increasing_versions_for_both_dialects() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(set(versions)) and versions[0] == 1
    for migration in MIGRATIONS:
        assert migration.statements("postgres") and migration.statements("duckdb")


def test_candle_tables_share_their_key_and_rejected_adds_reasons_and_payload() -> None:
    for name in ("candlesticks", "candlesticks_raw", "candlesticks_rejected"):
        assert TABLES[name].primary_key == ("ticker", "period_interval", "end_period_ts")
    assert set(CANDLESTICKS_REJECTED.column_names) == {
        *CANDLESTICKS.column_names,
        "reasons",
        "payload",
    }
    assert TABLES["markets"].primary_key == ("ticker",)


def test_ddl_uses_exact_numeric_types_and_timestamptz() -> None:
    pg = "\n".join(create_table_sql(CANDLESTICKS, "postgres"))
    duck = "\n".join(create_table_sql(CANDLESTICKS, "duckdb"))
    assert "price_close NUMERIC(18,6)" in pg and "volume NUMERIC(24,6)" in pg
    assert "price_close DECIMAL(18,6)" in duck and "open_interest DECIMAL(24,6)" in duck
    assert (
        "end_period_ts TIMESTAMPTZ NOT NULL" in pg and "end_period_ts TIMESTAMPTZ NOT NULL" in duck
    )
    assert "CREATE INDEX IF NOT EXISTS candlesticks_event_ticker_end_period_ts_idx" in pg
    assert "FLOAT" not in (pg + duck).upper() and "DOUBLE" not in (pg + duck).upper()


def test_candle_tables_hold_the_clients_candle_fields_in_its_order() -> None:
    # The client must not import the warehouse, so it names the fields itself; they must agree.
    assert CANDLE_VALUE_COLUMNS == CANDLE_VALUE_FIELDS
    for spec in (CANDLESTICKS, CANDLESTICKS_REJECTED, CANDLESTICKS_WS):
        values = [c for c in spec.column_names if c in CANDLE_VALUE_COLUMNS]
        assert tuple(values) == CANDLE_VALUE_COLUMNS
    assert CANDLESTICKS_REJECTED.column_names == (*CANDLESTICKS.column_names, "reasons", "payload")


NEW_MARKET_COLUMNS = ("settlement_bounds_type", "settlement_floor_dollars", "series_categories")


def test_migration_5_adds_settlement_bounds_and_categories_to_an_older_markets_table(
    wh_url: str,
) -> None:
    wh = open_warehouse(wh_url)
    try:
        wh.ensure_schema()
        # Turn it into the database migration 4 left: markets (with its indexes) without the new columns,
        # holding a row.
        before = replace(
            MARKETS, columns=tuple(c for c in MARKETS.columns if c.name not in NEW_MARKET_COLUMNS)
        )
        wh.execute(f"DROP TABLE {MARKETS.qualified}")
        for statement in create_table_sql(before, wh.dialect):
            wh.execute(statement)
        wh.execute(f"DELETE FROM {MIGRATIONS_TABLE} WHERE version = 5")
        old = market_rows().drop(columns=list(NEW_MARKET_COLUMNS)).iloc[:1]
        columns = ", ".join(old.columns)
        marks = ", ".join(["%s"] * len(old.columns))
        wh.execute(
            f"INSERT INTO {MARKETS.qualified} ({columns}, ingested_at) VALUES ({marks}, now())",
            [None if pd.isna(v) else v for v in old.iloc[0].tolist()],
        )
    finally:
        wh.close()

    wh = open_warehouse(wh_url)
    try:
        assert wh.ensure_schema() == [5]
        (kept,) = wh.markets([GAME_DATE]).to_dict("records")
        assert kept["ticker"] == old.iloc[0]["ticker"] and kept["series_categories"] is None
        scalar = market_rows(
            result="scalar",
            settlement_value_dollars=Decimal("0.5000"),
            settlement_bounds_type="default",
            settlement_floor_dollars=Decimal("0"),
            series_categories='["Sports"]',
        )
        wh.upsert(MARKETS.name, scalar)
        stored = wh.markets([GAME_DATE])
        assert list(stored.columns) == list(MARKETS.column_names)
        assert set(stored["settlement_value_dollars"]) == {Decimal("0.5")}
        assert set(stored["settlement_bounds_type"]) == {"default"}
        assert wh.ensure_schema() == []
    finally:
        wh.close()
