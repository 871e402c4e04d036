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
detaches without a checkpoint while the log is smaller than `wal_limit` (16 MiB, DuckDB's own automatic
threshold; DuckDB also checkpoints at the COMMIT that takes the log past it) and with one once it is larger.
Nothing else changes: the file is free between operations, a committed transaction is in the fsynced log,
and any process that attaches the file next (read-only too) replays the log and sees it; a rolled-back
transaction never reaches the log. The cost moves to attaching, which replays at most `wal_limit` of log
(~5-10 ms per MB, paid by readers too), and the gain is modest: in `bench/ingest_path.py`, dates written
into tables of ~1M rows spent ~230 ms each entering and leaving their transaction against ~275-300 ms with
a checkpoint at every detach (paired runs on a loaded machine; one run showed no gain). A process that exits
leaving a log behind folds it in once, best effort, if the file is free at that moment, so readers do not
replay it indefinitely.

Keeping the file attached between operations ("lingering": ~21 s entering and leaving 140 dates against
~25 s batched and ~32 s per detach, one sequential run each) holds the file between operations: another
process gets in only if it retries at the right moment (starvation unless waiters announce themselves and
holders yield), and tools without this module's retry (the `duckdb` shell, a direct `duckdb.connect` in
this process) fail at once. Batched checkpoints keep when the file is free exactly as it was.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
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

_PLACEHOLDER = re.compile(r"%%|%s|%\((\w+)\)s")
_stage_ids = itertools.count(1)
_alias_ids = itertools.count(1)


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


@dataclass
class _FileState:
    alias: str
    lock: threading.RLock = field(default_factory=threading.RLock)
    # The instance the file is attached to while `users` operations of this process use it.
    host: duckdb.DuckDBPyConnection | None = None
    users: int = 0
    #: Whether the current attachment is read-write (its detach may leave a log to fold in).
    writable: bool = False


_FILE_STATES: dict[str, _FileState] = {}
_FILE_STATES_LOCK = threading.Lock()
_host: duckdb.DuckDBPyConnection | None = None


def _file_state(path: str) -> _FileState:
    with _FILE_STATES_LOCK:
        state = _FILE_STATES.get(path)
        if state is None:
            state = _FILE_STATES[path] = _FileState(f"kalshi_wh{next(_alias_ids)}")
        return state


def _shared_host() -> duckdb.DuckDBPyConnection:
    """This process's in-memory instance that files are attached to (created on first use)."""
    global _host
    with _FILE_STATES_LOCK:
        if _host is None:
            _host = duckdb.connect(":memory:")
        return _host


def _discard_host(host: duckdb.DuckDBPyConnection) -> None:
    """Stop handing out `host` after it failed; it closes once its last attachment is released."""
    global _host
    with _FILE_STATES_LOCK:
        if _host is host:
            _host = None


def _forget_host_after_fork() -> None:
    # A forked child must not use (nor destroy) the parent's instance, whose threads it lacks.
    global _host, _FILE_STATES_LOCK
    _FILE_STATES_LOCK = threading.Lock()
    _orphaned_hosts.extend(s.host for s in _FILE_STATES.values() if s.host is not None)
    if _host is not None:
        _orphaned_hosts.append(_host)
    _host = None
    for state in _FILE_STATES.values():
        state.lock, state.host, state.users = threading.RLock(), None, 0
    _LOGGED.clear()


_orphaned_hosts: list[duckdb.DuckDBPyConnection] = []
os.register_at_fork(after_in_child=_forget_host_after_fork)
#: Files this process detached leaving a write-ahead log (path -> alias), folded in at exit.
_LOGGED: dict[str, str] = {}


def _wal_bytes(path: str) -> int:
    try:
        return os.path.getsize(path + ".wal")
    except OSError:
        return 0


def _fold_logs_at_exit() -> None:
    """Checkpoint the files this process left a log in, once each and without waiting for a lock."""
    for path, alias in list(_LOGGED.items()):
        if _wal_bytes(path) == 0:
            continue
        try:
            host = _shared_host()
            cursor = host.cursor()
        except duckdb.Error:
            return
        try:
            quoted = path.replace("'", "''")
            cursor.execute(f"ATTACH '{quoted}' AS {alias}")
            try:
                cursor.execute(f"CHECKPOINT {alias}")
            finally:
                cursor.execute(f"DETACH {alias}")
        except duckdb.Error:
            pass  # the file is busy or gone: whoever opens it next replays the log
        finally:
            cursor.close()
    _LOGGED.clear()


atexit.register(_fold_logs_at_exit)


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    text = str(exc)
    # Another process holds the file lock, or other code in this process has the file open directly.
    return (
        "Could not set lock" in text or "Conflicting lock" in text or "Unique file handle" in text
    )


class DuckDBTransaction(Transaction):
    """A transaction on one DuckDB connection."""

    def __init__(self, warehouse: DuckDBWarehouse, conn: duckdb.DuckDBPyConnection) -> None:
        self._wh = warehouse
        self._conn = conn

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
        """Upsert a registered frame or Arrow table of wire-form columns, cast to the column types."""
        stage = f"_stage_{spec.name}_{next(_stage_ids)}"
        selects = [
            f"CAST({c} AS {sql_type(spec.column(c).type, 'duckdb')}) AS {c}" for c in columns
        ]
        targets = list(columns)
        if "ingested_at" not in columns:
            selects.append("current_timestamp AS ingested_at")
            targets.append("ingested_at")
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in targets if c not in spec.primary_key)
        try:
            self._conn.register(stage, data)
            try:
                self._conn.execute(
                    f"INSERT INTO {spec.qualified} ({', '.join(targets)}) "
                    f"SELECT {', '.join(selects)} FROM {stage} "
                    f"ON CONFLICT ({', '.join(spec.primary_key)}) DO UPDATE SET {updates}"
                )
                written = _dml_count(self._conn)
            finally:
                self._conn.unregister(stage)
        except duckdb.Error as exc:
            self._wh._raise(exc, f"upsert into {spec.qualified}")
        return rows if written < 0 else written


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
            self._state = _FileState("memory")
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
            self._state = _file_state(self._path)

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
            if state.users == 0 or state.host is None:
                attach_read_only = read_only and Path(self._path).exists()
                state.host = self._attach(attach_read_only)
                state.writable = not attach_read_only
            state.users += 1
            conn = state.host.cursor()
        try:
            if self._memory is None:
                conn.execute(f"USE {self._state.alias}")
            conn.execute("SET TimeZone = 'UTC'")
        except duckdb.Error as exc:
            self._close(conn)
            self._raise(exc, "open")
        return conn

    def _close(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Close a cursor from `_open`, detaching the file (releasing its lock) after the last one."""
        conn.close()
        state = self._state
        if self._memory is not None or state.users == 0:
            return
        state.users -= 1
        if state.users == 0 and state.host is not None:
            host, state.host = state.host, None
            cursor = host.cursor()
            try:
                if state.writable:
                    self._detach_writable(cursor)
                else:
                    cursor.execute(f"DETACH {state.alias}")
            except duckdb.Error:
                # The instance is broken (e.g. invalidated by an I/O error): the next operation starts a
                # new one, and this one's file lock goes when it is garbage-collected.
                _discard_host(host)
            finally:
                cursor.close()

    def _detach_writable(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Detach a read-write attachment, checkpointing first only once the log has reached `wal_limit`."""
        alias = self._state.alias
        # A session setting: it applies to this cursor's DETACH only.
        cursor.execute("SET checkpoint_on_detach = 'DISABLED'")
        if _wal_bytes(self._path) >= self.wal_limit:
            cursor.execute(f"CHECKPOINT {alias}")
        cursor.execute(f"DETACH {alias}")
        if _wal_bytes(self._path):
            _LOGGED[self._path] = alias
        else:
            _LOGGED.pop(self._path, None)

    def _attach(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        path = self._path.replace("'", "''")
        options = " (READ_ONLY)" if read_only else ""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            host = _shared_host()
            cursor = host.cursor()
            try:
                cursor.execute(f"SET memory_limit = '{self.memory_limit_mb}MB'")
                cursor.execute(f"ATTACH '{path}' AS {self._state.alias}{options}")
                return host
            except duckdb.Error as exc:
                remaining = deadline - time.monotonic()
                if not _is_lock_conflict(exc):
                    _discard_host(host)
                    self._raise(exc, "open")
                if remaining <= 0:
                    raise WarehouseLocked(
                        f"DuckDB warehouse {self.redacted_url} stayed locked by another process for "
                        f"{self.lock_timeout:g}s ({first_line(exc)}) -- stop the other writer, raise "
                        "KALSHI_DUCKDB_LOCK_TIMEOUT, or use PostgreSQL for concurrent runs"
                    ) from exc
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 1.0)
            finally:
                cursor.close()

    @contextmanager
    def _connection(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._state.lock:
            conn = self._open(read_only)
            try:
                yield conn
            finally:
                self._close(conn)

    @contextmanager
    def _transaction(self, *, lock_schema: bool = False) -> Iterator[DuckDBTransaction]:
        with self._connection(read_only=False) as conn:
            try:
                conn.execute("BEGIN TRANSACTION")
            except duckdb.Error as exc:
                self._raise(exc, "begin")
            try:
                yield DuckDBTransaction(self, conn)
            except BaseException:
                _quiet_rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except duckdb.Error as exc:
                _quiet_rollback(conn)
                self._raise(exc, "commit")

    @contextmanager
    def _reader(self) -> Iterator[DuckDBTransaction]:
        with self._connection(read_only=True) as conn:
            yield DuckDBTransaction(self, conn)


def _quiet_rollback(conn: duckdb.DuckDBPyConnection) -> None:
    with suppress(duckdb.Error, WarehouseError):
        conn.execute("ROLLBACK")
