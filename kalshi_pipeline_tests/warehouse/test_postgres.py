"""PostgreSQL-specific behaviour: unreachable servers, connections killed mid-transaction, concurrent migrations."""

from __future__ import annotations

import threading
from decimal import Decimal

import psycopg
import pytest

from kalshi_pipeline.warehouse import (
    MIGRATIONS,
    WarehouseUnavailable,
    open_warehouse,
)
from kalshi_pipeline_tests.warehouse.builders import candle_rows


@pytest.mark.integration  # connects to a closed local port
def test_unreachable_server_gives_one_actionable_line_without_password() -> None:
    wh = open_warehouse("postgresql://kalshi:s3cret-pw@127.0.0.1:1/kalshi", connect_timeout=2)
    with pytest.raises(WarehouseUnavailable) as info:
        wh.ensure_schema()
    message = str(info.value)
    assert "\n" not in message
    assert "s3cret-pw" not in message and "s3cret-pw" not in repr(wh)
    assert "postgresql://kalshi:***@127.0.0.1:1/kalshi" in message
    assert "check the server is running" in message


def test_missing_database_is_unavailable(pg_url: str) -> None:
    wh = open_warehouse(pg_url.rsplit("/", 1)[0] + "/kalshi_does_not_exist")
    with pytest.raises(WarehouseUnavailable, match="does not exist"):
        wh.query_df("SELECT 1")


def test_connection_killed_mid_transaction_rolls_back(fresh_pg_url: str) -> None:
    wh = open_warehouse(fresh_pg_url)
    wh.upsert("candlesticks", candle_rows(n=3))
    with pytest.raises(WarehouseUnavailable, match="unavailable"), wh.transaction() as tx:
        tx.upsert("candlesticks", candle_rows(n=5, close=Decimal("0.9900")))
        pid = int(tx.query_df("SELECT pg_backend_pid() AS pid")["pid"].iloc[0])
        with psycopg.connect(fresh_pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        tx.upsert("candlesticks", candle_rows(n=1, close=Decimal("0.1")))
    back = wh.query_df("SELECT price_close FROM kalshi.candlesticks ORDER BY end_period_ts")
    assert list(back["price_close"]) == [Decimal("0.5")] * 3


def test_concurrent_ensure_schema_is_serialized(fresh_pg_url: str) -> None:
    barrier = threading.Barrier(4)
    results: list[object] = []

    def migrate() -> None:
        wh = open_warehouse(fresh_pg_url)
        barrier.wait()
        try:
            results.append(wh.ensure_schema())
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    applied = [r for r in results if isinstance(r, list)]
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    assert sorted(len(a) for a in applied) == [0, 0, 0, len(MIGRATIONS)]
    versions = open_warehouse(fresh_pg_url).applied_migrations()
    assert versions == [m.version for m in MIGRATIONS]


def test_connection_killed_before_commit_loses_nothing_written_before(fresh_pg_url: str) -> None:
    wh = open_warehouse(fresh_pg_url)
    wh.upsert("candlesticks", candle_rows(n=2))
    with pytest.raises(WarehouseUnavailable, match="during commit"), wh.transaction() as tx:
        tx.delete_candles("candlesticks", None, 0, 2**31)
        pid = int(tx.query_df("SELECT pg_backend_pid() AS pid")["pid"].iloc[0])
        with psycopg.connect(fresh_pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    assert wh.table_counts()["candlesticks"] == 2


def test_rest_candle_tables_are_indexed_by_key_and_game_date_only(fresh_pg_url: str) -> None:
    wh = open_warehouse(fresh_pg_url)
    wh.ensure_schema()
    found = wh.query_df(
        "SELECT tablename, indexname FROM pg_indexes "
        "WHERE schemaname = 'kalshi' AND tablename LIKE 'candlesticks%' ORDER BY indexname"
    )
    indexes = {
        table: list(found.loc[found["tablename"] == table, "indexname"])
        for table in (
            "candlesticks",
            "candlesticks_raw",
            "candlesticks_rejected",
            "candlesticks_ws",
        )
    }
    assert indexes == {
        "candlesticks": ["candlesticks_game_date_idx", "candlesticks_pkey"],
        "candlesticks_raw": ["candlesticks_raw_game_date_idx", "candlesticks_raw_pkey"],
        "candlesticks_rejected": [
            "candlesticks_rejected_game_date_idx",
            "candlesticks_rejected_pkey",
        ],
        "candlesticks_ws": [
            "candlesticks_ws_event_ticker_end_period_ts_idx",
            "candlesticks_ws_game_date_idx",
            "candlesticks_ws_pkey",
        ],
    }


def test_connections_are_utc_without_jit(pg_url: str) -> None:
    wh = open_warehouse(pg_url)
    settings = wh.query_df(
        "SELECT current_setting('TimeZone') AS tz, current_setting('jit') AS jit"
    )
    assert settings.to_dict("records") == [{"tz": "UTC", "jit": "off"}]
