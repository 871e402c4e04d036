"""PostgreSQL warehouse (psycopg 3): a connection per operation, COPY-staged upserts, advisory-locked migrations."""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, LiteralString, NoReturn, cast
from urllib.parse import urlsplit

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from kalshi_pipeline.warehouse.base import Params, Transaction, Warehouse, frame_from_rows
from kalshi_pipeline.warehouse.errors import (
    WarehouseError,
    WarehouseQueryError,
    WarehouseUnavailable,
    first_line,
)
from kalshi_pipeline.warehouse.frames import PreparedArrow, PreparedFrame, object_values
from kalshi_pipeline.warehouse.schema import TableSpec
from kalshi_pipeline.warehouse.urls import WarehouseUrl

# Key of the transaction-scoped advisory lock that serializes `ensure_schema` across processes.
SCHEMA_LOCK_KEY = 0x6B616C736869  # "kalshi"
#: Pauses between connection attempts: a connection refused or dropped once (a restart, a terminated
#: backend's slot) is retried twice within ~1.5 s; a dead server still fails fast.
CONNECT_RETRY_PAUSES_S = (0.5, 1.0)

#: Every connection's settings, sent in one round trip. JIT compilation (on by default above a plan cost of
#: 100k, which a read of a few dates' candles reaches) spent 0.1-0.5 s compiling reads of 30 dates among a
#: season's rows (the clean step's state and its candle counts per game), reads that take 0.5-1 s without it.
#: work_mem: the checks' per-market aggregates over a range's candles sort a few tens of MB; Postgres's 4 MB
#: default spills them to disk.
_SESSION_SETTINGS = "SET TIME ZONE 'UTC'; SET jit = off; SET work_mem = '64MB'"
_TIMESTAMPTZ_OID = 1184
_INTEGER_OIDS = frozenset({20, 21, 23})  # int8, int2, int4
_stage_ids = itertools.count(1)
#: Bytes handed to COPY per write call.
_COPY_CHUNK = 1 << 20


class PostgresTransaction(Transaction):
    """A transaction on one psycopg connection."""

    def __init__(self, warehouse: PostgresWarehouse, conn: psycopg.Connection[Any]) -> None:
        self._wh = warehouse
        self._conn = conn

    def execute(self, sql: str, params: Params = None) -> int:
        """Run one statement and return its row count."""
        try:
            with self._conn.cursor() as cur:
                cur.execute(_sql(sql), params)
                return cur.rowcount
        except psycopg.Error as exc:
            self._wh._raise(exc, "statement")

    def query_df(self, sql: str, params: Params = None) -> pd.DataFrame:
        """Run a query inside this transaction and return a DataFrame."""
        try:
            return _fetch_df(self._conn, sql, params)
        except psycopg.Error as exc:
            self._wh._raise(exc, "query")

    def _write(self, prepared: PreparedFrame) -> int:
        def copy_rows(copy: psycopg.Copy) -> None:
            for row in _wire_rows(prepared):
                copy.write_row(row)

        return self._copy_upsert(prepared.spec, list(prepared.columns), "", copy_rows)

    def _write_arrow(self, prepared: PreparedArrow) -> int:
        # pyarrow renders the whole table as CSV in C++ (exact decimals, UTC times as text, NULL as an
        # empty unquoted field, every string quoted); COPY parses it server-side.
        buffer = io.BytesIO()
        table = _utc_times_as_text(prepared.table)
        pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
        data = buffer.getbuffer()

        def copy_csv(copy: psycopg.Copy) -> None:
            for lo in range(0, len(data), _COPY_CHUNK):
                copy.write(data[lo : lo + _COPY_CHUNK])

        spec, columns = prepared.spec, list(prepared.columns)
        # Candle writes replace a window they just deleted, so their keys are normally new: COPY straight
        # into the table. A key that exists makes the COPY fail as a whole; the savepoint undoes it and the
        # rows take the staged upsert instead, so the outcome is the upsert's either way.
        try:
            with self._conn.cursor() as cur:
                cur.execute("SAVEPOINT arrow_copy")
                try:
                    copy_sql = (
                        f"COPY {spec.qualified} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
                    )
                    with cur.copy(_sql(copy_sql)) as copy:
                        copy_csv(copy)
                except psycopg.errors.UniqueViolation:
                    cur.execute("ROLLBACK TO SAVEPOINT arrow_copy")
                else:
                    cur.execute("RELEASE SAVEPOINT arrow_copy")
                    return prepared.rows
        except psycopg.Error as exc:
            self._wh._raise(exc, f"upsert into {spec.qualified}")
        return self._copy_upsert(spec, columns, " (FORMAT csv)", copy_csv)

    def _copy_upsert(
        self,
        spec: TableSpec,
        columns: list[str],
        options: str,
        feed: Callable[[psycopg.Copy], None],
    ) -> int:
        """COPY rows into a temporary stage (`feed` writes them), then upsert the stage into the table."""
        stage = f"_stage_{spec.name}_{next(_stage_ids)}"
        targets = columns if "ingested_at" in columns else [*columns, "ingested_at"]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in targets if c not in spec.primary_key)
        try:
            with self._conn.cursor() as cur:
                cur.execute(
                    _sql(
                        f"CREATE TEMP TABLE {stage} (LIKE {spec.qualified} INCLUDING DEFAULTS) "
                        "ON COMMIT DROP"
                    )
                )
                copy_sql = f"COPY {stage} ({', '.join(columns)}) FROM STDIN{options}"
                with cur.copy(_sql(copy_sql)) as copy:
                    feed(copy)
                cur.execute(
                    _sql(
                        f"INSERT INTO {spec.qualified} ({', '.join(targets)}) "
                        f"SELECT {', '.join(targets)} FROM {stage} "
                        f"ON CONFLICT ({', '.join(spec.primary_key)}) DO UPDATE SET {updates}"
                    )
                )
                written = cur.rowcount
                cur.execute(_sql(f"DROP TABLE {stage}"))
                return written
        except psycopg.Error as exc:
            self._wh._raise(exc, f"upsert into {spec.qualified}")


def _sql(text: str) -> LiteralString:
    """Pass warehouse SQL to psycopg, whose types accept only literal strings.

    The warehouse builds its statements from table specs and its own text; values always travel as
    parameters, never inside the text, which is the injection risk `LiteralString` guards against.
    """
    return cast(LiteralString, text)


def _utc_times_as_text(table: pa.Table) -> pa.Table:
    """`table` with each UTC timestamp column as the text the CSV writer would give it (`2025-10-21 00:01:00Z`).

    The CSV writer formats a zoned timestamp through the time-zone database, ~2.5 us a value (~40 ms of a
    date's 8.5k candles with their two time columns); the naive cast of the same instants gives the same UTC
    wall-clock text, fractional digits per unit included, in ~1 ms. Missing times stay missing (NULL).
    """
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz in ("UTC", "+00:00"):
            naive = table.column(i).cast(pa.timestamp(field.type.unit))
            # pyarrow generates its kernels at import, so the type checker knows them only by name.
            text = pc.call_function(
                "binary_join_element_wise", [naive.cast(pa.string()), pa.scalar("Z"), pa.scalar("")]
            )
            table = table.set_column(i, field.name, text)
    return table


def _wire_rows(prepared: PreparedFrame) -> Iterator[tuple[Any, ...]]:
    """Rows of text/int/bool/None values for COPY; Postgres parses them into the typed stage columns."""
    arrays = []
    for name in prepared.columns:
        series = prepared.frame[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            series = series.dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        arrays.append(object_values(series))
    return zip(*arrays, strict=True)


def _fetch_df(conn: psycopg.Connection[Any], sql: str, params: Params) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(_sql(sql), params)
        if cur.description is None:
            return pd.DataFrame()
        names = [d.name for d in cur.description]
        ts_cols = [d.name for d in cur.description if d.type_code == _TIMESTAMPTZ_OID]
        int_cols = [d.name for d in cur.description if d.type_code in _INTEGER_OIDS]
        return frame_from_rows(names, cur.fetchall(), ts_cols, int_cols)


class PostgresWarehouse(Warehouse):
    """The warehouse on PostgreSQL; every operation opens (and closes) its own connection."""

    dialect = "postgres"
    reads_at_once = 2

    def __init__(self, url: WarehouseUrl, connect_timeout: float = 10.0) -> None:
        super().__init__(url)
        self._connect_timeout = connect_timeout
        self._password = urlsplit(url.raw).password

    def _connect(self) -> psycopg.Connection[Any]:
        extra: dict[str, Any] = {}
        if "connect_timeout=" not in self._url.raw:
            extra["connect_timeout"] = max(1, round(self._connect_timeout))
        attempt = 0
        while True:
            conn: psycopg.Connection[Any] | None = None
            try:
                conn = psycopg.connect(self._url.raw, autocommit=True, **extra)
                conn.execute(_SESSION_SETTINGS)
                return conn
            except psycopg.Error as exc:
                if conn is not None:
                    conn.close()
                # A server restarting or a connection slot briefly gone is transient; a wrong database,
                # user or password is not, and neither is the last attempt.
                if attempt == len(CONNECT_RETRY_PAUSES_S) or not _transient(exc):
                    self._raise(
                        exc, "connect" if attempt == 0 else f"connect ({attempt + 1} attempts)"
                    )
                time.sleep(CONNECT_RETRY_PAUSES_S[attempt])
                attempt += 1

    def _raise(self, exc: psycopg.Error, doing: str) -> NoReturn:
        message = first_line(exc)
        if self._password:
            message = message.replace(self._password, "***")
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            raise WarehouseUnavailable(
                f"PostgreSQL warehouse {self.redacted_url} unavailable during {doing}: {message} "
                "-- check the server is running and reachable, the database exists and "
                "KALSHI_WAREHOUSE_URL is right"
                + ("" if doing.startswith("connect") else "; the transaction was rolled back")
            ) from exc
        raise WarehouseQueryError(
            f"PostgreSQL warehouse {self.redacted_url} rejected the {doing}: {message} "
            "(transaction rolled back)"
        ) from exc

    @contextmanager
    def _transaction(self, *, lock_schema: bool = False) -> Iterator[PostgresTransaction]:
        conn = self._connect()
        try:
            try:
                conn.execute("BEGIN")
                if lock_schema:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK_KEY])
            except psycopg.Error as exc:
                self._raise(exc, "begin")
            tx = PostgresTransaction(self, conn)
            try:
                yield tx
            except BaseException:
                _quiet_rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                _quiet_rollback(conn)
                self._raise(exc, "commit")
        finally:
            conn.close()

    @contextmanager
    def _reader(self) -> Iterator[PostgresTransaction]:
        conn = self._connect()
        try:
            yield PostgresTransaction(self, conn)
        finally:
            conn.close()


#: libpq's connect messages (no SQLSTATE) for mistakes a retry cannot fix.
_PERMANENT_CONNECT_ERRORS = (
    "does not exist",
    "authentication failed",
    "no pg_hba.conf entry",
    "password",
    "invalid",
)


def _transient(exc: psycopg.Error) -> bool:
    """Return whether a failed connect may succeed when retried (no answer, or the server not ready)."""
    if exc.sqlstate is not None:
        return exc.sqlstate.startswith(("08", "57P", "53"))
    message = str(exc).lower()
    return not any(marker in message for marker in _PERMANENT_CONNECT_ERRORS)


def _quiet_rollback(conn: psycopg.Connection[Any]) -> None:
    """Roll back if the connection still lives; a dead connection was already rolled back by the server."""
    with suppress(psycopg.Error, WarehouseError):
        if not conn.closed:
            conn.execute("ROLLBACK")
