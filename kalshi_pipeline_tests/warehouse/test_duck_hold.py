"""DuckDB files held between writes (`DuckDBWarehouse.hold`): kept attached, yet never kept from a waiter.

A process that holds the file writes back to back without detaching; another process that waits through
this module announces itself and gets in, a tool without the module's retry gets in once the holder is idle,
and two holders take turns.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline.warehouse.duck import DuckDBWarehouse
from kalshi_pipeline.warehouse.urls import resolve_url
from kalshi_pipeline_tests.warehouse.builders import T0, candle_rows


def _log_bytes(path: Path) -> int:
    log = path.with_name(path.name + ".wal")
    return log.stat().st_size if log.exists() else 0


def _count_directly(path: Path) -> int:
    """Count clean candles with a plain DuckDB connection (no retry, no announcement)."""
    conn = duckdb.connect(str(path), read_only=True)
    try:
        row = conn.execute("SELECT count(*) FROM kalshi.candlesticks").fetchone()
    finally:
        conn.close()
    assert row is not None
    return int(row[0])


def _warehouse(path: Path, wal_limit: int) -> DuckDBWarehouse:
    url = resolve_url(f"duckdb:///{path}")
    DuckDBWarehouse(url, wal_limit=0).ensure_schema()
    return DuckDBWarehouse(url, wal_limit=wal_limit)


def test_a_held_file_stays_attached_between_writes_and_is_released_with_the_block(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wh.duckdb"
    wh = _warehouse(path, wal_limit=0)
    with wh.hold():
        wh.upsert("candlesticks", candle_rows(n=3))
        # Still attached: the log is not folded in, and a plain open of the file conflicts.
        assert _log_bytes(path) > 0
        with pytest.raises(duckdb.Error):
            _count_directly(path)
        # Reads and further writes use the held attachment and see each other.
        assert wh.table_counts()["candlesticks"] == 3
        wh.upsert("candlesticks", candle_rows(start_ts=T0 + 3600, n=2))
        assert wh.table_counts()["candlesticks"] == 5
    # Released as any detach: the limit of 0 folds the log in, and the file is free.
    assert _log_bytes(path) == 0
    assert _count_directly(path) == 5


def test_a_failed_transaction_inside_a_hold_releases_the_file(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    wh = _warehouse(path, wal_limit=1 << 30)
    with wh.hold():
        wh.upsert("candlesticks", candle_rows(n=3))
        with pytest.raises(RuntimeError, match="stop"), wh.transaction() as tx:
            tx.upsert("candlesticks", candle_rows(start_ts=T0 + 3600, n=5))
            raise RuntimeError("stop")
        assert _count_directly(path) == 3
        assert wh.table_counts()["candlesticks"] == 3


def test_a_bulk_transaction_is_folded_in_at_release_though_its_log_is_small(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    wh = _warehouse(path, wal_limit=1 << 30)
    rows = candle_rows(
        n=130_000
    )  # more than a row group: DuckDB writes it to the file before COMMIT
    with wh.hold():
        assert wh.upsert("candlesticks", rows) == 130_000
        # The log only says where the rows are, yet replaying it rebuilds their keys at every attach.
        assert 0 < _log_bytes(path) < 1 << 20
    assert _log_bytes(path) == 0
    assert _count_directly(path) == 130_000


_HOLDER = """
import sys, threading
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline_tests.warehouse.builders import candle_rows
wh = open_warehouse(sys.argv[1], lock_timeout=120)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
writes = 0
with wh.hold(idle=float(sys.argv[3])):
    while writes < int(sys.argv[4]) and not stop.is_set():
        wh.upsert("candlesticks", candle_rows(sys.argv[2], start_ts=1766188800 + 600 * writes, n=10))
        writes += 1
        if writes == 1:
            print("holding", flush=True)
    print(writes, flush=True)
    stop.wait()
"""


def _start_holder(url: str, ticker: str, idle: float, writes: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, ticker, str(idle), str(writes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def _stop(proc: subprocess.Popen[str]) -> int:
    """Tell a holder to stop; return how many writes it made."""
    out, _ = proc.communicate("\n", timeout=120)
    assert proc.returncode == 0
    return int(out.split()[-1])


@pytest.mark.integration  # starts a process
def test_a_waiting_process_gets_in_while_another_holds_the_file_and_keeps_writing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wh.duckdb"
    url = f"duckdb:///{path}"
    open_warehouse(url).ensure_schema()
    # The holder writes back to back until told to stop: the file is never idle.
    holder = _start_holder(url, "H-1", idle=600, writes=10**9)
    try:
        with pytest.raises(duckdb.Error, match="lock"):
            _count_directly(path)  # no retry, no announcement: the held file is busy
        waiter = open_warehouse(url, lock_timeout=120)
        assert waiter.upsert("candlesticks", candle_rows("W-1", n=4)) == 4
        assert waiter.table_counts()["candlesticks"] >= 14
    finally:
        writes = _stop(holder)
    counts = open_warehouse(url).query_df(
        "SELECT ticker, count(*) AS n FROM kalshi.candlesticks GROUP BY ticker ORDER BY ticker"
    )
    assert dict(zip(counts["ticker"], counts["n"], strict=True)) == {"H-1": 10 * writes, "W-1": 4}


@pytest.mark.integration  # starts a process
def test_a_held_file_goes_free_for_other_tools_once_the_holder_is_idle(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    url = f"duckdb:///{path}"
    open_warehouse(url).ensure_schema()
    # One write, then the holder idles inside its hold block until told to stop.
    holder = _start_holder(url, "H-1", idle=0.2, writes=1)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "1"
        # A tool that opens the file once, without this module's retry, gets in within the idle bound
        # (tried for up to 60 s, so a loaded machine cannot fail the test).
        give_up = time.monotonic() + 60
        while True:
            try:
                assert _count_directly(path) == 10
                break
            except duckdb.Error:
                assert time.monotonic() < give_up, "the idle holder never released the file"
                time.sleep(0.05)
    finally:
        holder.communicate("\n", timeout=120)
    assert holder.returncode == 0


@pytest.mark.integration  # starts processes
def test_two_holders_take_turns(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    url = f"duckdb:///{path}"
    open_warehouse(url).ensure_schema()
    # Each writes 15 times back to back, then idles inside its hold block until told to stop.
    holders = [_start_holder(url, ticker, idle=600, writes=15) for ticker in ("A-1", "B-1")]
    for holder in holders:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "15"
    for holder in holders:
        holder.communicate("\n", timeout=120)
    assert [h.returncode for h in holders] == [0, 0]
    counts = open_warehouse(url).query_df(
        "SELECT ticker, count(*) AS n FROM kalshi.candlesticks GROUP BY ticker ORDER BY ticker"
    )
    assert dict(zip(counts["ticker"], counts["n"], strict=True)) == {"A-1": 150, "B-1": 150}
