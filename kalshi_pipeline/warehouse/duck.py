"""Embedded DuckDB warehouse: per-operation attachment, lock-conflict retry, exact DECIMAL upserts.

A DuckDB file admits one read-write process at a time (or several read-only ones). Dagster runs, the daemon's
sensors and `dagster dev` are separate processes, so every operation attaches the file only for that
operation and detaches it afterwards, retrying the attach with bounded exponential backoff while another
process holds the file (`lock_timeout`, default 30 s; the `warehouse` resource sets it from `KALSHI_DUCKDB_LOCK_TIMEOUT`); reads attach
read-only. Files are attached (each under its own `kalshi_wh<n>` alias, made the cursor's default catalog)
to one in-memory DuckDB instance kept per process: creating an instance costs ~20 ms, the attach ~2 ms.
Opening the file directly would name its catalog after the file stem, and `data/kalshi.duckdb` would make
`kalshi.x` ambiguous. Operations on a file are serialized per process by a re-entrant lock; a read made
while this thread has a transaction open shares its attachment (seeing committed data only).

Checkpoints are batched, not taken at every detach. A COMMIT makes a transaction durable by appending it to
the write-ahead log (`<file>.wal`, fsynced); a checkpoint folds the log into the file. DuckDB checkpoints at
DETACH by default, and for date-sized candle writes that was the most expensive step of the transaction
(per 8.5k raw + 8.5k clean rows at ~1.2M rows per table, measured alone: COMMIT ~30-70 ms, the checkpoint
~100 ms, replaying the 6.8 MB log on the next attach ~30-70 ms; the candle tables' secondary indexes, which
migration 6 drops on DuckDB, added ~150-450 ms to every checkpoint, even one of a few rows). So a write
detaches without a checkpoint while the log is smaller than `wal_limit` (16 MiB, DuckDB's default automatic
threshold) and with one once it is larger.
Nothing else changes: the file is free between operations, a committed transaction is in the fsynced log,
and any process that attaches the file next (read-only too) replays the log and sees it; a rolled-back
transaction never reaches the log. The cost moves to attaching, which replays at most `wal_limit` of log
(~5-10 ms per MB, paid by readers too), and the gain is modest: in `bench/ingest_path.py`, dates written
into tables of ~1M rows spent ~230 ms each entering and leaving their transaction against ~275-300 ms with
a checkpoint at every detach (paired runs on a loaded machine; one run showed no gain). A process that exits
leaving a log behind folds it in once, best effort, if the file is free at that moment, so readers do not
replay it indefinitely.

Where a date's write goes (8.5k raw rows with ~400-byte payloads and 8.5k clean rows, into tables of ~1M
rows; each statement timed alone on a loaded machine): an upsert ~55-60 ms per table, of which a plain INSERT
is ~23 ms and a semi-join finding no stored key ~20 ms (so an upsert of at least `_PLAIN_INSERT_ROWS` rows
checks first and inserts without ON CONFLICT when every key is new, as a backfill's dates are: DuckDB has no
savepoints to try the INSERT and fall back); COMMIT ~50-80 ms, serializing ~6 MB of log (fsync ~10 ms of it);
the replay at the next attach ~60 ms (~10 ms per MB); and the checkpoint that every ~3rd date's log
triggered, ~0.6-2 s (3-8 s under I/O contention), of which ~550 ms writes the primary keys' ART indexes
(~150 ms for the same rows in tables without a key) whatever the log holds (1 date ~0.6 s, 12 dates ~1.1 s).
Those checkpoints were most of COMMIT's time in the profiles; `hold` spreads them over more dates.

`hold()` keeps the file attached between a block's operations, for a process that has writes ready one after
another (a backfill's dates). While held, nothing is replayed per transaction and DuckDB's own threshold
(`HELD_WAL_LIMIT`, 64 MiB, while a hold is open; 16 MiB otherwise) lets ~10 dates share a checkpoint; on
release the log is folded in from `wal_limit` as at any detach, so another process still replays at most 16
MiB; a transaction of `_BULK_ROWS` rows or more is folded in at its detach whatever its log's size (DuckDB
writes its full row groups into the file before COMMIT and logs only where they are: a few KB of log that took
~1.3 s to replay at every later attach of a file filled that way). Measured on the same 12 dates into copies
of a ~1M-row file, one process per run, runs alternating (seconds entering, writing and leaving the 12
transactions; two rounds at load ~7, then two at ~4-5 on 2 cores): held with plain inserts 5.3-6.8 / 3.6-4.8,
held with ON CONFLICT 7.9-8.3 / 4.4-5.9, per operation with plain inserts 16.7-17.2 / 10.8-12.6, per operation
with ON CONFLICT (as before) 19.7-21.5 / 9.5-12.0 (the code before this change: 13.0): begin ~2 ms per date
held against ~100-400 ms, one checkpoint instead of four. The plain insert alone is within the noise of whole
transactions; paired in one process it takes 53-74 ms per table and date (semi-join ~10 ms included) against
103-138 ms for the upsert. In `bench/ingest_path.py --candles 100000 --preload-candles 500000 --only duckdb`
(12 dates into ~500k-row tables, validation included, load ~4): storing took 3.7-4.8 s held (`duckdb_held`;
begin 0.05 s, commit 1.3-1.4 s) against 8.1-11.6 s per operation (begin 1.3-1.7 s, commit 3.7-5.0 s). COMMIT
stays durable (the log is fsynced at every COMMIT, held or not); a process killed while holding leaves at most
64 MiB of log for the next opener to replay.

Other processes are not starved while a file is held: see `duck_files`.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import duckdb
import numpy as np
import pandas as pd

from kalshi_pipeline.warehouse.base import (
    Params,
    Transaction,
    Warehouse,
    frame_from_rows,
    integer_series,
)
from kalshi_pipeline.warehouse.duck_files import (
    DEFAULT_HOLD_IDLE,
    LOGGED,
    POLL,
    RETRY_MAX,
    YIELD_MAX,
    FileState,
    announce,
    discard_host,
    file_state,
    is_lock_conflict,
    set_checkpoint_threshold,
    shared_host,
    someone_waiting,
    start_releaser,
    wal_bytes,
    withdraw,
)
from kalshi_pipeline.warehouse.errors import (
    WarehouseConfigError,
    WarehouseError,
    WarehouseLocked,
    WarehouseQueryError,
    WarehouseUnavailable,
    first_line,
)
from kalshi_pipeline.warehouse.frames import PreparedArrow, PreparedFrame, map_distinct
from kalshi_pipeline.warehouse.schema import TableSpec, sql_type
from kalshi_pipeline.warehouse.urls import WarehouseUrl

DEFAULT_LOCK_TIMEOUT = 30.0
#: The write-ahead log size at which a write's detach checkpoints (DuckDB's automatic threshold).
DEFAULT_WAL_LIMIT = 16 * 1024 * 1024
#: DuckDB's buffer pool per process (its default is 80% of the machine's memory, which it then keeps: a
#: 30-day backfill's run held ~300 MB more with it). The data is in the file; evicted pages are read again.
DEFAULT_MEMORY_LIMIT_MB = 256
#: DuckDB's own checkpoint threshold (a COMMIT that takes the log past it checkpoints) while a file is held
#: (`DuckDBWarehouse.hold`): ~10 dates per checkpoint instead of ~3; detaching still folds the log in from
#: `wal_limit`. Otherwise DuckDB's default (`DEFAULT_WAL_LIMIT`) stays.
HELD_WAL_LIMIT = 64 * 1024 * 1024
#: Rows inserted by one transaction from which its detach checkpoints whatever the log's size: DuckDB writes
#: a transaction's full row groups (122,880 rows) into the file before COMMIT and logs only where they are,
#: so a log of a few KB can take each later attach ~1.3 s to replay (rebuilding the key indexes).
_BULK_ROWS = 100_000

#: Staged rows from which an upsert first checks whether any key is stored, to insert without ON CONFLICT.
_PLAIN_INSERT_ROWS = 1000

_PLACEHOLDER = re.compile(r"%%|%s|%\((\w+)\)s")
_stage_ids = itertools.count(1)


def translate_params(sql: str, params: Params) -> tuple[str, Any]:
    """Map psycopg-style placeholders (`%s`, `%(name)s`, `%%`) to DuckDB's (`?`, `$name`, `%`)."""
    if params is None:
        return sql, None

    used: list[str] = []

    def repl(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "%%":
            return "%"
        if token == "%s":
            return "?"
        used.append(match.group(1))
        return f"${match.group(1)}"

    translated = _PLACEHOLDER.sub(repl, sql)
    if isinstance(params, Mapping):
        # psycopg ignores unused names in a mapping; DuckDB rejects them, so pass only the used ones.
        return translated, {name: params[name] for name in dict.fromkeys(used)}
    return translated, list(params)


class DuckDBTransaction(Transaction):
    """A transaction on one DuckDB connection."""

    def __init__(self, warehouse: DuckDBWarehouse, conn: duckdb.DuckDBPyConnection) -> None:
        self._wh = warehouse
        self._conn = conn
        #: Rows written by this transaction's upserts.
        self.inserted = 0

    def execute(self, sql: str, params: Params = None) -> int:
        """Run one statement and return its row count (-1 when DuckDB reports none)."""
        query, args = translate_params(sql, params)
        try:
            self._conn.execute(query, args)
            return _dml_count(self._conn)
        except duckdb.Error as exc:
            self._wh._raise(exc, "statement")

    def query_df(self, sql: str, params: Params = None) -> pd.DataFrame:
        """Run a query inside this transaction and return a DataFrame."""
        try:
            return _fetch_df(self._conn, sql, params)
        except duckdb.Error as exc:
            self._wh._raise(exc, "query")

    def _write(self, prepared: PreparedFrame) -> int:
        return self._insert(prepared.spec, list(prepared.columns), prepared.frame, prepared.rows)

    def _write_arrow(self, prepared: PreparedArrow) -> int:
        # DuckDB scans the Arrow buffers directly (no pandas, no Python object per value).
        return self._insert(prepared.spec, list(prepared.columns), prepared.table, prepared.rows)

    def _insert(self, spec: TableSpec, columns: list[str], data: Any, rows: int) -> int:
        """Upsert a registered frame or Arrow table of wire-form columns, cast to the column types.

        From `_PLAIN_INSERT_ROWS` rows, a plain INSERT when no staged key is stored yet: one semi-join finds
        out, and nothing can store a key in between (one writing process per file, its operations on the
        file serialized). A failed INSERT would abort the whole transaction, DuckDB having no savepoints.
        """
        stage = f"_stage_{spec.name}_{next(_stage_ids)}"
        selects = [
            f"CAST({c} AS {sql_type(spec.column(c).type, 'duckdb')}) AS {c}" for c in columns
        ]
        targets = list(columns)
        if "ingested_at" not in columns:
            selects.append("current_timestamp AS ingested_at")
            targets.append("ingested_at")
        key = ", ".join(spec.primary_key)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in targets if c not in spec.primary_key)
        insert = (
            f"INSERT INTO {spec.qualified} ({', '.join(targets)}) "
            f"SELECT {', '.join(selects)} FROM {stage}"
        )
        try:
            self._conn.register(stage, data)
            try:
                if not self._keys_new(spec, columns, selects, stage, rows):
                    insert += f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
                self._conn.execute(insert)
                written = _dml_count(self._conn)
            finally:
                self._conn.unregister(stage)
        except duckdb.Error as exc:
            self._wh._raise(exc, f"upsert into {spec.qualified}")
        written = rows if written < 0 else written
        self.inserted += written
        return written

    def _keys_new(
        self, spec: TableSpec, columns: list[str], selects: list[str], stage: str, rows: int
    ) -> bool:
        """Whether none of `rows` (from `_PLAIN_INSERT_ROWS`) staged keys, cast as inserted, is stored yet."""
        if rows < _PLAIN_INSERT_ROWS or not set(spec.primary_key) <= set(columns):
            return False
        keys = ", ".join(selects[columns.index(c)] for c in spec.primary_key)
        row = self._conn.execute(
            f"SELECT EXISTS (FROM {spec.qualified} SEMI JOIN (SELECT {keys} FROM {stage}) AS staged "
            f"USING ({', '.join(spec.primary_key)}))"
        ).fetchone()
        return row is not None and not row[0]


def _dml_count(conn: duckdb.DuckDBPyConnection) -> int:
    description = conn.description
    if description and len(description) == 1 and description[0][0] == "Count":
        row = conn.fetchone()
        return int(row[0]) if row else 0
    return -1


def _fetch_df(conn: duckdb.DuckDBPyConnection, sql: str, params: Params) -> pd.DataFrame:
    query, args = translate_params(sql, params)
    if _READ_STATEMENT.match(query):
        relation = conn.sql(query, params=args)
        fast = _fast_frame(relation) if relation is not None else None
        if fast is not None:
            return fast
    conn.execute(query, args)
    if conn.description is None:
        return pd.DataFrame()
    names = [d[0] for d in conn.description]
    types = [str(d[1]).upper() for d in conn.description]
    ts_cols = [n for n, t in zip(names, types, strict=True) if t.startswith("TIMESTAMP WITH")]
    int_cols = [n for n, t in zip(names, types, strict=True) if t in _INTEGER_TYPES]
    return frame_from_rows(names, conn.fetchall(), ts_cols, int_cols)


_READ_STATEMENT = re.compile(r"\s*(SELECT|WITH|FROM|VALUES)\b", re.IGNORECASE)
_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
)
_PASS_TYPES = frozenset({"VARCHAR", "BOOLEAN", "DOUBLE", "FLOAT", "TIMESTAMP WITH TIME ZONE"})


def _fast_frame(relation: duckdb.DuckDBPyRelation) -> pd.DataFrame | None:
    """Columnar fetch: DECIMALs travel as text and become Decimal objects, never floats.

    Fetching row tuples builds one Python object per cell; the columnar path is ~5x faster on candle reads.
    Returns None for shapes it does not handle (duplicate names, nested or unusual types).
    """
    names = list(relation.columns)
    types = [str(t).upper() for t in relation.types]
    if len(set(names)) != len(names):
        return None
    exprs = []
    for name, type_ in zip(names, types, strict=True):
        quoted = '"' + name.replace('"', '""') + '"'
        if type_.startswith("DECIMAL") or type_ in ("HUGEINT", "UBIGINT"):
            exprs.append(f"CAST({quoted} AS VARCHAR) AS {quoted}")
        elif type_ in _INTEGER_TYPES or type_ in _PASS_TYPES or type_ == "DATE":
            exprs.append(quoted)
        else:
            return None
    df = relation.select(", ".join(exprs)).df()
    for name, type_ in zip(names, types, strict=True):
        if type_.startswith("DECIMAL"):
            df[name] = map_distinct(df[name], Decimal)
        elif type_ in ("HUGEINT", "UBIGINT"):
            df[name] = integer_series(map_distinct(df[name], int))
        elif type_ in _INTEGER_TYPES:
            df[name] = integer_series(df[name])
        elif type_ == "DATE":
            # Factorized on the datetime64 values: one date object per distinct day, no per-row iteration.
            codes, uniques = pd.factorize(df[name], use_na_sentinel=True)
            days = np.array([ts.date() for ts in uniques] + [None], dtype=object)
            df[name] = pd.Series(days[codes], index=df.index, dtype=object)
        elif type_ == "TIMESTAMP WITH TIME ZONE":
            df[name] = pd.to_datetime(df[name], utc=True)
    return df


class DuckDBWarehouse(Warehouse):
    """The warehouse in an embedded DuckDB file (or in memory for `duckdb:///:memory:`)."""

    dialect = "duckdb"

    def __init__(
        self,
        url: WarehouseUrl,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        wal_limit: int = DEFAULT_WAL_LIMIT,
        memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
    ) -> None:
        """`wal_limit`: the log size (bytes) from which a write's detach checkpoints; 0 = at every detach.

        `memory_limit_mb` caps the process's DuckDB buffer pool (one per process: the last warehouse opened
        sets it).
        """
        if memory_limit_mb < 16:
            raise WarehouseConfigError(
                f"DuckDB memory limit must be at least 16 MB, got {memory_limit_mb}"
            )
        self.memory_limit_mb = int(memory_limit_mb)
        super().__init__(url)
        self.lock_timeout = max(0.0, lock_timeout)
        self.wal_limit = max(0, wal_limit)
        self._memory: duckdb.DuckDBPyConnection | None = None
        path = url.duckdb_path or ""
        if url.in_memory:
            self._path = ":memory:"
            self._state = FileState("memory")
            self._memory = duckdb.connect(":memory:")
        else:
            resolved = Path(path).resolve()
            try:
                resolved.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WarehouseConfigError(
                    f"cannot create the folder of DuckDB warehouse {url.redacted}: {exc}"
                ) from None
            self._path = str(resolved)
            self._state = file_state(self._path)

    @property
    def path(self) -> str:
        """The absolute path of the DuckDB file (or `:memory:`)."""
        return self._path

    def close(self) -> None:
        """Close the in-memory database if this handle owns one (a file needs no closing)."""
        if self._memory is not None:
            self._memory.close()
            self._memory = None

    def _raise(self, exc: BaseException, doing: str) -> NoReturn:
        message = first_line(exc)
        if isinstance(exc, duckdb.IOException):
            raise WarehouseUnavailable(
                f"DuckDB warehouse {self.redacted_url} failed during {doing}: {message} "
                "-- check the file and its folder are readable/writable and the disk has space; "
                "the transaction was rolled back"
            ) from exc
        raise WarehouseQueryError(
            f"DuckDB warehouse {self.redacted_url} rejected the {doing}: {message} "
            "(transaction rolled back)"
        ) from exc

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """A cursor whose default catalog is the warehouse; the caller holds the file lock."""
        if self._memory is not None:
            conn = self._memory.cursor()
        else:
            state = self._state
            # Attached already: by an operation of this thread, or held between operations (`hold`).
            if state.host is None:
                attach_read_only = read_only and Path(self._path).exists()
                state.host = self._attach(attach_read_only)
                state.writable = not attach_read_only
            state.users += 1
            state.held_by = None
            conn = state.host.cursor()
        try:
            if self._memory is None:
                conn.execute(f"USE {self._state.alias}")
                held = self._state.holds > 0
                set_checkpoint_threshold(conn, HELD_WAL_LIMIT if held else DEFAULT_WAL_LIMIT)
            conn.execute("SET TimeZone = 'UTC'")
        except duckdb.Error as exc:
            self._close(conn, keep=False)
            self._raise(exc, "open")
        return conn

    def _close(self, conn: duckdb.DuckDBPyConnection, *, keep: bool = True) -> None:
        """Close a cursor from `_open`, detaching the file (releasing its lock) after the last one.

        Inside `hold`, a read-write attachment stays attached unless another process announced it waits
        or the operation failed (`keep=False`: the instance may be broken).
        """
        conn.close()
        state = self._state
        if self._memory is not None or state.users == 0:
            return
        state.users -= 1
        if state.users or state.host is None:
            return
        if keep and state.holds and state.writable and not someone_waiting(self._path):
            state.held_by, state.idle_since = self, time.monotonic()
            start_releaser()
            return
        self.detach_file()

    def detach_file(self) -> None:
        """Detach the file from this process's instance; the caller holds the file lock, no cursor is open."""
        state = self._state
        host, state.host, state.held_by = state.host, None, None
        if host is None:
            return
        cursor = host.cursor()
        try:
            if state.writable:
                self._detach_writable(cursor)
            else:
                cursor.execute(f"DETACH {state.alias}")
        except duckdb.Error:
            # The instance is broken (e.g. invalidated by an I/O error): the next operation starts a
            # new one, and this one's file lock goes when it is garbage-collected.
            discard_host(host)
        finally:
            cursor.close()

    @contextmanager
    def hold(self, idle: float = DEFAULT_HOLD_IDLE) -> Iterator[None]:
        """Keep the file attached between this block's writes while no other process waits for it.

        For a process with writes ready one after another (a backfill's dates): no log replayed per
        transaction, and DuckDB checkpoints from `HELD_WAL_LIMIT` instead of `wal_limit`. Another process
        waiting for the file (through this module) announces itself; the file is then detached at the end
        of the current operation, or within ~20 ms when idle, and this process defers its next attach
        until the waiter got in. The file is also detached after `idle` seconds without an operation and
        when the block ends. In memory, nothing to hold.
        """
        state = self._state
        if self._memory is not None:
            yield
            return
        with state.lock:
            state.holds += 1
            state.hold_idle = idle
        try:
            yield
        finally:
            with state.lock:
                state.holds -= 1
                if not state.holds and not state.users and state.host is not None:
                    self.detach_file()

    def checkpoint(self) -> None:
        """Write the log into the file now if the next detach would (from `wal_limit`, or after a bulk write).

        A run that has other work left after its last write (its report) does this beside that work, so
        its final detach is quick. In memory, nothing to do.
        """
        if self._memory is not None:
            return
        with self._connection(read_only=False) as conn:
            if self._state.writable:
                try:
                    self._checkpoint_if_due(conn)
                except duckdb.Error as exc:
                    self._raise(exc, "checkpoint")

    def _checkpoint_if_due(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Checkpoint when the log has reached `wal_limit` or a bulk write asked for it."""
        if wal_bytes(self._path) >= self.wal_limit or self._state.checkpoint_due:
            cursor.execute(f"CHECKPOINT {self._state.alias}")
        self._state.checkpoint_due = False

    def _detach_writable(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Detach a read-write attachment, checkpointing first only once the log has reached `wal_limit`."""
        alias = self._state.alias
        # A session setting: it applies to this cursor's DETACH only.
        cursor.execute("SET checkpoint_on_detach = 'DISABLED'")
        self._checkpoint_if_due(cursor)
        cursor.execute(f"DETACH {alias}")
        if wal_bytes(self._path):
            LOGGED[self._path] = alias
        else:
            LOGGED.pop(self._path, None)

    def _attach(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        path = self._path.replace("'", "''")
        options = " (READ_ONLY)" if read_only else ""
        deadline = time.monotonic() + self.lock_timeout
        # A holder that just let go for a waiter must not take the file back before the waiter's next try.
        yield_until = min(deadline, time.monotonic() + YIELD_MAX)
        while time.monotonic() < yield_until and someone_waiting(self._path):
            time.sleep(POLL)
        delay = 0.05
        announced = False
        while True:
            host = shared_host()
            cursor = host.cursor()
            try:
                cursor.execute(f"SET memory_limit = '{self.memory_limit_mb}MB'")
                cursor.execute(f"ATTACH '{path}' AS {self._state.alias}{options}")
                if announced:
                    withdraw(self._path)
                return host
            except duckdb.Error as exc:
                remaining = deadline - time.monotonic()
                if not is_lock_conflict(exc):
                    discard_host(host)
                    self._raise(exc, "open")
                if remaining <= 0:
                    if announced:
                        withdraw(self._path)
                    raise WarehouseLocked(
                        f"DuckDB warehouse {self.redacted_url} stayed locked by another process for "
                        f"{self.lock_timeout:g}s ({first_line(exc)}) -- stop the other writer, raise "
                        "KALSHI_DUCKDB_LOCK_TIMEOUT, or use PostgreSQL for concurrent runs"
                    ) from exc
                announce(self._path)
                announced = True
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, RETRY_MAX)
            finally:
                cursor.close()

    @contextmanager
    def _connection(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._state.lock:
            conn = self._open(read_only)
            try:
                yield conn
            except BaseException:
                self._close(conn, keep=False)
                raise
            self._close(conn)

    @contextmanager
    def _transaction(self, *, lock_schema: bool = False) -> Iterator[DuckDBTransaction]:
        with self._connection(read_only=False) as conn:
            try:
                conn.execute("BEGIN TRANSACTION")
            except duckdb.Error as exc:
                self._raise(exc, "begin")
            tx = DuckDBTransaction(self, conn)
            try:
                yield tx
            except BaseException:
                _quiet_rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except duckdb.Error as exc:
                _quiet_rollback(conn)
                self._raise(exc, "commit")
            if tx.inserted >= _BULK_ROWS and wal_bytes(self._path):
                self._state.checkpoint_due = True

    @contextmanager
    def _reader(self) -> Iterator[DuckDBTransaction]:
        with self._connection(read_only=True) as conn:
            yield DuckDBTransaction(self, conn)


def _quiet_rollback(conn: duckdb.DuckDBPyConnection) -> None:
    with suppress(duckdb.Error, WarehouseError):
        conn.execute("ROLLBACK")
