"""DuckDB-specific behaviour: lock conflicts with other processes, placeholders, in-memory databases."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kalshi_pipeline.warehouse import MIGRATIONS, WarehouseLocked, open_warehouse
from kalshi_pipeline.warehouse.duck import translate_params
from kalshi_pipeline_tests.warehouse.builders import candle_rows

_HOLDER = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("CREATE TABLE IF NOT EXISTS holder (x INTEGER)")
print("locked", flush=True)
sys.stdin.readline()
conn.close()
"""


def _hold_lock(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(timeout=30)


@pytest.mark.integration  # starts processes
def test_open_waits_for_another_process_to_release_the_file(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    open_warehouse(f"duckdb:///{path}").ensure_schema()
    holder = _hold_lock(path)
    released = threading.Event()

    def release_soon() -> None:
        released.wait(0.5)
        _release(holder)

    releaser = threading.Thread(target=release_soon)
    releaser.start()
    try:
        wh = open_warehouse(f"duckdb:///{path}", lock_timeout=30)
        assert wh.upsert("candlesticks", candle_rows(n=2)) == 2
    finally:
        releaser.join()
    assert holder.returncode == 0
    assert wh.table_counts()["candlesticks"] == 2


@pytest.mark.integration  # starts processes
def test_lock_held_past_timeout_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    holder = _hold_lock(path)
    try:
        wh = open_warehouse(f"duckdb:///{path}", lock_timeout=0.3)
        with pytest.raises(
            WarehouseLocked, match=r"stayed locked by another process for 0.3s"
        ) as info:
            wh.query_df("SELECT 1")
        assert "\n" not in str(info.value)
    finally:
        _release(holder)
    assert int(wh.query_df("SELECT 1 AS one")["one"].iloc[0]) == 1


@pytest.mark.integration  # starts processes
def test_two_files_in_one_process_and_reads_inside_a_transaction(tmp_path: Path) -> None:
    a = open_warehouse(f"duckdb:///{tmp_path / 'a.duckdb'}")
    b = open_warehouse(f"duckdb:///{tmp_path / 'b.duckdb'}")
    with a.transaction() as tx:
        tx.upsert("candlesticks", candle_rows(n=3))
        # Another file is usable meanwhile, and a read of this file sees committed data only.
        assert b.upsert("candlesticks", candle_rows(n=2)) == 2
        assert a.table_counts()["candlesticks"] == 0
    assert (a.table_counts()["candlesticks"], b.table_counts()["candlesticks"]) == (3, 2)
    # Both files are detached between operations, so another process can take them.
    holders = [_hold_lock(tmp_path / name) for name in ("a.duckdb", "b.duckdb")]
    for holder in holders:
        _release(holder)
    assert [h.returncode for h in holders] == [0, 0]


def test_relative_path_and_folder_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KALSHI_WAREHOUSE_URL", raising=False)
    wh = open_warehouse()
    assert wh.redacted_url == "duckdb:///data/kalshi.duckdb"
    wh.ensure_schema()
    assert (tmp_path / "data" / "kalshi.duckdb").exists()


def test_in_memory_database_persists_across_operations() -> None:
    with open_warehouse("duckdb:///:memory:") as wh:
        wh.upsert("candlesticks", candle_rows(n=3))
        assert wh.table_counts()["candlesticks"] == 3
        assert open_warehouse("duckdb:///:memory:").table_counts()["candlesticks"] == 0


def test_placeholders_translate_to_duckdb_style() -> None:
    assert translate_params("a = %s AND b LIKE 'x%%' AND c = %(name)s", {"name": 1}) == (
        "a = ? AND b LIKE 'x%' AND c = $name",
        {"name": 1},
    )
    assert translate_params("SELECT '%%s'", None) == ("SELECT '%%s'", None)
    assert translate_params("x = %s", (1,)) == ("x = ?", [1])


_WRITER = """
import sys
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline_tests.warehouse.builders import candle_rows
wh = open_warehouse(sys.argv[1], lock_timeout=60)
for i in range(10):
    wh.upsert("candlesticks", candle_rows(sys.argv[2], start_ts=1766188800 + 600 * i, n=10))
    wh.query_df("SELECT count(*) FROM kalshi.candlesticks")
print("done", flush=True)
"""


@pytest.mark.integration  # starts processes
def test_two_writer_processes_take_turns(tmp_path: Path) -> None:
    # Both processes also race to create the schema on the new file.
    url = f"duckdb:///{tmp_path / 'kalshi.duckdb'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, ticker], stdout=subprocess.PIPE, text=True
        )
        for ticker in ("A-1", "B-1")
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert all(o.strip() == "done" for o in outputs)
    counts = open_warehouse(url).query_df(
        "SELECT ticker, count(*) AS n FROM kalshi.candlesticks GROUP BY ticker ORDER BY ticker"
    )
    assert dict(zip(counts["ticker"], counts["n"], strict=True)) == {"A-1": 100, "B-1": 100}
    assert open_warehouse(url).applied_migrations() == [m.version for m in MIGRATIONS]
