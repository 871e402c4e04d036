"""The table specs and migrations: contract columns, unique ordered versions, DDL for both dialects."""

from __future__ import annotations

from kalshi_pipeline.kalshi.candles import CANDLE_VALUE_FIELDS
from kalshi_pipeline.warehouse.schema import (
    CANDLE_VALUE_COLUMNS,
    CANDLESTICKS,
    CANDLESTICKS_REJECTED,
    CANDLESTICKS_WS,
    MIGRATIONS,
    TABLES,
    create_table_sql,
)


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
