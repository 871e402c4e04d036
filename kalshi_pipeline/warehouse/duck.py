"""Embedded DuckDB warehouse: short-lived connections, lock-conflict retry, exact DECIMAL upserts.

A DuckDB file admits one read-write process at a time (or several read-only ones). Dagster runs, the daemon's
sensors and `dagster dev` are separate processes, so every operation opens its own connection, keeps it only
for that operation, and retries opening with bounded exponential backoff while another process holds the
file (`lock_timeout`, default 30 s, env `KALSHI_DUCKDB_LOCK_TIMEOUT`); reads open read-only. Each operation
attaches the file under the alias `kalshi_wh` to a fresh in-memory instance (opening it directly would name
the catalog after the file stem, and `data/kalshi.duckdb` would make `kalshi.x` ambiguous). DuckDB refuses
to attach one file twice in a process, so operations on a file are serialized per process by a re-entrant
lock, and a read made while this thread has a transaction open uses that transaction's instance (seeing
committed data only).
"""

from __future__ import annotations

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
)
from kalshi_pipeline.warehouse.frames import PreparedFrame, map_distinct
from kalshi_pipeline.warehouse.schema import sql_type
from kalshi_pipeline.warehouse.urls import WarehouseUrl

LOCK_TIMEOUT_ENV = "KALSHI_DUCKDB_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 30.0
ALIAS = "kalshi_wh"

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


@dataclass
class _FileState:
    lock: threading.RLock = field(default_factory=threading.RLock)
    active: duckdb.DuckDBPyConnection | None = None


_FILE_STATES: dict[str, _FileState] = {}
_FILE_STATES_LOCK = threading.Lock()


def _file_state(path: str) -> _FileState:
    with _FILE_STATES_LOCK:
        return _FILE_STATES.setdefault(path, _FileState())


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    text = str(exc)
    # Another process holds the file lock, or other code in this process has the file open directly.
    return (
        "Could not set lock" in text or "Conflicting lock" in text or "Unique file handle" in text
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


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
        spec = prepared.spec
        stage = f"_stage_{spec.name}_{next(_stage_ids)}"
        columns = list(prepared.columns)
        selects = [
            f"CAST({c} AS {sql_type(spec.column(c).type, 'duckdb')}) AS {c}" for c in columns
        ]
        targets = list(columns)
        if "ingested_at" not in columns:
            selects.append("current_timestamp AS ingested_at")
            targets.append("ingested_at")
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in targets if c not in spec.primary_key)
        try:
            self._conn.register(stage, prepared.frame)
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
        return prepared.rows if written < 0 else written


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
            df[name] = map_distinct(df[name], lambda ts: ts.date())
        elif type_ == "TIMESTAMP WITH TIME ZONE":
            df[name] = pd.to_datetime(df[name], utc=True)
    return df


class DuckDBWarehouse(Warehouse):
    """The warehouse in an embedded DuckDB file (or in memory for `duckdb:///:memory:`)."""

    dialect = "duckdb"

    def __init__(self, url: WarehouseUrl, lock_timeout: float | None = None) -> None:
        super().__init__(url)
        if lock_timeout is None:
            raw = os.environ.get(LOCK_TIMEOUT_ENV)
            try:
                lock_timeout = float(raw) if raw else DEFAULT_LOCK_TIMEOUT
            except ValueError:
                raise WarehouseConfigError(
                    f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds"
                ) from None
        self.lock_timeout = max(0.0, lock_timeout)
        self._memory: duckdb.DuckDBPyConnection | None = None
        path = url.duckdb_path or ""
        if url.in_memory:
            self._path = ":memory:"
            self._state = _FileState()
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
        message = _first_line(exc)
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
        if self._memory is not None:
            conn = self._memory.cursor()
        elif self._state.active is not None:
            # A transaction of this process holds the file; a second attachment would be refused.
            conn = self._state.active.cursor()
            conn.execute(f"USE {ALIAS}")
        else:
            conn = self._attach(read_only and Path(self._path).exists())
        try:
            conn.execute("SET TimeZone = 'UTC'")
        except duckdb.Error as exc:
            conn.close()
            self._raise(exc, "open")
        return conn

    def _attach(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        # The file is attached under a fixed alias to a fresh in-memory instance: connecting to the file
        # directly would name its catalog after the file stem, and `data/kalshi.duckdb` would then make
        # `kalshi.candlesticks` ambiguous between catalog `kalshi` and schema `kalshi`.
        path = self._path.replace("'", "''")
        options = " (READ_ONLY)" if read_only else ""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            conn = duckdb.connect(":memory:")
            try:
                conn.execute(f"ATTACH '{path}' AS {ALIAS}{options}")
                conn.execute(f"USE {ALIAS}")
                return conn
            except duckdb.Error as exc:
                conn.close()
                remaining = deadline - time.monotonic()
                if not _is_lock_conflict(exc):
                    self._raise(exc, "open")
                if remaining <= 0:
                    raise WarehouseLocked(
                        f"DuckDB warehouse {self.redacted_url} stayed locked by another process for "
                        f"{self.lock_timeout:g}s ({_first_line(exc)}) -- stop the other writer, raise "
                        f"{LOCK_TIMEOUT_ENV}, or use PostgreSQL for concurrent runs"
                    ) from exc
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 1.0)

    @contextmanager
    def _transaction(self, *, lock_schema: bool = False) -> Iterator[DuckDBTransaction]:
        with self._state.lock:
            nested = self._state.active is not None
            conn = self._open(read_only=False)
            if not nested and self._memory is None:
                self._state.active = conn
            try:
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
            finally:
                if not nested and self._memory is None:
                    self._state.active = None
                conn.close()

    @contextmanager
    def _reader(self) -> Iterator[DuckDBTransaction]:
        with self._state.lock:
            conn = self._open(read_only=True)
            try:
                yield DuckDBTransaction(self, conn)
            finally:
                conn.close()


def _quiet_rollback(conn: duckdb.DuckDBPyConnection) -> None:
    with suppress(duckdb.Error, WarehouseError):
        conn.execute("ROLLBACK")
