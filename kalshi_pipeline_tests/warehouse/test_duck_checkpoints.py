"""DuckDB write costs: checkpoints batched by log size, candle tables without secondary indexes.

A detach that skips the checkpoint must still leave committed rows durable and visible to the next opener,
and a rolled-back transaction must leave the file and its log as they were.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from kalshi_pipeline.warehouse.duck import DuckDBWarehouse
from kalshi_pipeline.warehouse.errors import WarehouseConfigError
from kalshi_pipeline.warehouse.schema import (
    CANDLESTICKS,
    CANDLESTICKS_RAW,
    CANDLESTICKS_REJECTED,
    CANDLESTICKS_WS,
    MIGRATIONS_TABLE,
    create_table_sql,
)
from kalshi_pipeline.warehouse.urls import resolve_url
from kalshi_pipeline_tests.warehouse.builders import T0, candle_rows


def _warehouse(path: Path, wal_limit: int) -> DuckDBWarehouse:
    """A warehouse with its schema checkpointed into the file (no log yet)."""
    url = resolve_url(f"duckdb:///{path}")
    DuckDBWarehouse(url, wal_limit=0).ensure_schema()
    assert _log_bytes(path) == 0
    return DuckDBWarehouse(url, wal_limit=wal_limit)


def _log_bytes(path: Path) -> int:
    log = path.with_name(path.name + ".wal")
    return log.stat().st_size if log.exists() else 0


def _count_directly(path: Path) -> int:
    """Count clean candles with a plain DuckDB connection, as another tool would open the file."""
    conn = duckdb.connect(str(path), read_only=True)
    try:
        row = conn.execute("SELECT count(*) FROM kalshi.candlesticks").fetchone()
    finally:
        conn.close()
    assert row is not None
    return int(row[0])


def test_a_write_under_the_limit_leaves_its_log_and_the_next_opener_sees_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wh.duckdb"
    wh = _warehouse(path, wal_limit=1 << 30)
    assert wh.upsert("candlesticks", candle_rows(n=3)) == 3
    assert _log_bytes(path) > 0
    # Detached: a plain connection can open the file, replays the log and sees the committed rows.
    assert _count_directly(path) == 3
    assert wh.table_counts()["candlesticks"] == 3


def test_a_limit_of_zero_checkpoints_at_every_detach(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    wh = _warehouse(path, wal_limit=0)
    wh.upsert("candlesticks", candle_rows(n=3))
    assert _log_bytes(path) == 0
    assert _count_directly(path) == 3


def test_the_log_is_folded_in_at_the_detach_that_finds_it_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    probe = _warehouse(tmp_path / "probe.duckdb", wal_limit=1 << 30)
    probe.upsert("candlesticks", candle_rows(n=3))
    one_write = _log_bytes(tmp_path / "probe.duckdb")
    assert one_write > 0

    wh = _warehouse(path, wal_limit=one_write * 3 // 2)
    wh.upsert("candlesticks", candle_rows(n=3))
    assert 0 < _log_bytes(path) < one_write * 3 // 2
    wh.upsert("candlesticks", candle_rows(start_ts=T0 + 3600, n=3))
    assert _log_bytes(path) == 0
    assert _count_directly(path) == 6


def test_checkpoint_folds_the_log_in_when_the_detach_would_and_not_otherwise(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wh.duckdb"
    probe = _warehouse(tmp_path / "probe.duckdb", wal_limit=1 << 30)
    probe.upsert("candlesticks", candle_rows(n=3))
    one_write = _log_bytes(tmp_path / "probe.duckdb")

    limit = one_write * 3 // 2
    wh = _warehouse(path, wal_limit=limit)
    with wh.hold():
        wh.upsert("candlesticks", candle_rows(n=3))
        wh.checkpoint()
        first = _log_bytes(path)
        assert 0 < first < limit  # under the limit: left for a later detach
        wh.upsert("candlesticks", candle_rows(start_ts=T0 + 3600, n=3))
        assert _log_bytes(path) >= limit  # held: the file stays attached, the log grows
        wh.checkpoint()
        assert _log_bytes(path) == 0  # folded in while still held
        assert wh.table_counts()["candlesticks"] == 6
    assert _count_directly(path) == 6


def test_a_rolled_back_transaction_leaves_the_file_and_its_log_as_they_were(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wh.duckdb"
    wh = _warehouse(path, wal_limit=1 << 30)
    wh.upsert("candlesticks", candle_rows(n=3))
    logged = _log_bytes(path)
    with pytest.raises(RuntimeError, match="stop"), wh.transaction() as tx:
        tx.upsert("candlesticks", candle_rows(start_ts=T0 + 3600, n=5))
        raise RuntimeError("stop")
    assert _log_bytes(path) == logged
    assert wh.table_counts()["candlesticks"] == 3


_WRITE_AND_EXIT = """
import sys
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline_tests.warehouse.builders import candle_rows
wh = open_warehouse(sys.argv[1])
wh.upsert("candlesticks", candle_rows(n=4))
print(wh.table_counts()["candlesticks"], flush=True)
"""


@pytest.mark.integration  # starts a process
def test_a_process_that_leaves_a_log_folds_it_in_when_it_exits(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    done = subprocess.run(
        [sys.executable, "-c", _WRITE_AND_EXIT, f"duckdb:///{path}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "4"
    assert _log_bytes(path) == 0
    assert _count_directly(path) == 4


def _candle_indexes(wh: DuckDBWarehouse) -> set[str]:
    names = wh.query_df(
        "SELECT index_name FROM duckdb_indexes() WHERE schema_name = 'kalshi' "
        "AND table_name LIKE 'candlesticks%%'"
    )["index_name"]
    return set(names)


def test_migration_6_drops_the_candle_tables_secondary_indexes_on_duckdb(tmp_path: Path) -> None:
    wh = _warehouse(tmp_path / "wh.duckdb", wal_limit=0)
    assert _candle_indexes(wh) == set()
    # A file from before migration 6 holds them; the migration drops them and keeps the rows.
    wh.upsert("candlesticks", candle_rows(n=3))
    for spec in (CANDLESTICKS_RAW, CANDLESTICKS, CANDLESTICKS_REJECTED, CANDLESTICKS_WS):
        for statement in create_table_sql(spec, "duckdb")[1:]:
            wh.execute(statement)
    wh.execute(f"DELETE FROM {MIGRATIONS_TABLE} WHERE version = 6")
    assert len(_candle_indexes(wh)) == 8
    assert DuckDBWarehouse(wh.url, wal_limit=0).ensure_schema() == [6]
    assert _candle_indexes(wh) == set()
    assert wh.table_counts()["candlesticks"] == 3


def test_the_buffer_pool_is_capped_at_the_configured_size(tmp_path: Path) -> None:
    url = resolve_url(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    wh = DuckDBWarehouse(url, memory_limit_mb=96)
    limit = wh.query_df("SELECT current_setting('memory_limit') AS v")["v"].iloc[0]
    assert limit == "91.5 MiB"  # 96 MB (10**6 bytes) as DuckDB prints it
    with pytest.raises(WarehouseConfigError, match="at least 16 MB, got 8"):
        DuckDBWarehouse(url, memory_limit_mb=8)


def test_large_upserts_of_new_keys_insert_plainly_and_stored_keys_still_update(
    tmp_path: Path,
) -> None:
    wh = _warehouse(tmp_path / "wh.duckdb", wal_limit=0)
    first = candle_rows(n=1500, close=Decimal("0.5000"))
    assert wh.upsert("candlesticks", first) == 1500  # no key stored: a plain INSERT
    # Half the keys stored, half new: the batch goes through ON CONFLICT and updates the stored half.
    second = candle_rows(start_ts=T0 + 60 * 750, n=1500, close=Decimal("0.6125"))
    assert wh.upsert("candlesticks", second) == 1500
    closes = wh.query_df(
        "SELECT price_close, count(*) AS n FROM kalshi.candlesticks GROUP BY price_close "
        "ORDER BY price_close"
    )
    assert list(zip(closes["price_close"], closes["n"], strict=True)) == [
        (Decimal("0.500000"), 750),
        (Decimal("0.612500"), 1500),
    ]
