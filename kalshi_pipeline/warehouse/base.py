"""The dialect-neutral warehouse API: `Warehouse`, `Transaction`, schema migration; queries in `queries.py`.

SQL parameters use one style everywhere (psycopg's): positional `%s` with a list/tuple, or named `%(name)s`
with a dict; write `%%` for a literal percent sign when parameters are given. When `params` is None the SQL is
sent verbatim. Python lists bind as arrays, so `ticker = ANY(%s)` with a list works on both dialects.
"""

from __future__ import annotations

import datetime as dt
import logging
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pandas as pd
import pyarrow as pa

from kalshi_pipeline.warehouse.candle_sql import candles_select
from kalshi_pipeline.warehouse.errors import WarehouseDataError
from kalshi_pipeline.warehouse.frames import (
    PreparedArrow,
    PreparedFrame,
    object_values,
    prepare_arrow,
    prepare_frame,
)
from kalshi_pipeline.warehouse.queries import WarehouseQueries
from kalshi_pipeline.warehouse.schema import (
    CANDLE_TABLES,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    SCHEMA,
    table_spec,
)
from kalshi_pipeline.warehouse.times import to_utc
from kalshi_pipeline.warehouse.urls import Dialect, WarehouseUrl

logger = logging.getLogger(__name__)

Params = Sequence[Any] | Mapping[str, Any] | None


class Transaction(ABC):
    """One database transaction; everything done through it commits together or not at all."""

    @abstractmethod
    def execute(self, sql: str, params: Params = None) -> int:
        """Run one statement and return the affected row count (-1 when the driver cannot tell)."""

    @abstractmethod
    def query_df(self, sql: str, params: Params = None) -> pd.DataFrame:
        """Run a query inside this transaction and return its rows as a DataFrame (see `Warehouse.query_df`)."""

    @abstractmethod
    def _write(self, prepared: PreparedFrame) -> int:
        """Stage the prepared rows and upsert them into their table."""

    def upsert(self, table: str, df: pd.DataFrame) -> int:
        """Insert rows, updating those whose primary key exists; return the number of distinct rows written.

        `df` must carry exactly the table's columns (`ingested_at` may be omitted: it is set to now). Rows that
        repeat a primary key collapse to the last one. Decimal columns are written exactly, never via float.
        """
        spec = table_spec(table)
        prepared = prepare_frame(spec, df)
        if prepared.rows == 0:
            return 0
        return self._write(prepared)

    @abstractmethod
    def _write_arrow(self, prepared: PreparedArrow) -> int:
        """Stage the checked Arrow rows and upsert them into their table."""

    def upsert_arrow(self, table: str, data: pa.Table) -> int:
        """`upsert` for rows already in wire form as an Arrow table (the bulk candle path).

        Columns are the table's (`ingested_at` optional) with exact Arrow types: strings for text and JSON,
        integers, decimal128 at the column's scale, UTC timestamps, date32 (`frames.arrow_type_ok`); each
        primary key once. Nothing is converted, so nothing can round; returns the rows written.
        """
        prepared = prepare_arrow(table_spec(table), data)
        if prepared.rows == 0:
            return 0
        return self._write_arrow(prepared)

    def candles(
        self,
        table: str,
        game_dates: Sequence[dt.date],
        *,
        columns: Sequence[str] | None = None,
        event_tickers: Collection[str] | None = None,
        since: int | dt.datetime | None = None,
    ) -> pd.DataFrame:
        """`Warehouse.candles` inside this transaction (it sees the transaction's own writes)."""
        sql, params = candles_select(
            table, game_dates, columns=columns, event_tickers=event_tickers, since=since
        )
        return self.query_df(sql, params)

    def count_candles(
        self,
        table: str,
        game_dates: Sequence[dt.date],
        *,
        event_tickers: Collection[str] | None = None,
        since: int | dt.datetime | None = None,
    ) -> int:
        """How many rows `candles` would return, counted in the database."""
        sql, params = candles_select(
            table, game_dates, event_tickers=event_tickers, since=since, count=True
        )
        return int(self.query_df(sql, params)["n"].iloc[0])

    def delete_candles(
        self,
        table: str,
        tickers: Sequence[str] | None,
        start_ts: int | dt.datetime,
        end_ts: int | dt.datetime,
        period_interval: int = 1,
        *,
        source: str | None = None,
    ) -> int:
        """Delete candles of `tickers` (None = every ticker) with `start_ts <= end_period_ts <= end_ts`.

        Works on `candlesticks`, `candlesticks_raw` and `candlesticks_rejected`; times are Unix seconds or
        tz-aware datetimes. `source` (e.g. `'ws'`) deletes only the rows of that source. Returns the number
        of rows deleted.
        """
        spec = table_spec(table)
        if spec.name not in CANDLE_TABLES:
            raise WarehouseDataError(
                f"delete_candles works on {sorted(CANDLE_TABLES)}, not {spec.qualified}"
            )
        if isinstance(tickers, str):
            raise WarehouseDataError("delete_candles takes a list of tickers, not a single string")
        start = to_utc(start_ts, "start_ts")
        end = to_utc(end_ts, "end_ts")
        sql = (
            f"DELETE FROM {spec.qualified} WHERE period_interval = %s "
            "AND end_period_ts >= %s AND end_period_ts <= %s"
        )
        params: list[Any] = [int(period_interval), start, end]
        if source is not None:
            sql += " AND source = %s"
            params.append(str(source))
        if tickers is not None:
            ticker_list = [str(t) for t in tickers]
            if not ticker_list:
                return 0
            sql += " AND ticker = ANY(%s)"
            params.append(ticker_list)
        return self.execute(sql, params)

    def delete_candle_windows(
        self, table: str, windows: Sequence[tuple[str, int, int]], period_interval: int = 1
    ) -> dict[str, int]:
        """Delete each market's candles of its own window in one statement; return the rows deleted per ticker.

        `windows` holds `(ticker, start_ts, end_ts)` in Unix seconds, inclusive at both ends as in
        `delete_candles` (which this equals, window by window). Tickers that lost no row are absent.
        """
        spec = table_spec(table)
        if spec.name not in CANDLE_TABLES:
            raise WarehouseDataError(
                f"delete_candle_windows works on {sorted(CANDLE_TABLES)}, not {spec.qualified}"
            )
        if not windows:
            return {}
        params: list[Any] = [int(period_interval)]
        each = []
        for ticker, start_ts, end_ts in windows:
            each.append("(ticker = %s AND end_period_ts >= %s AND end_period_ts <= %s)")
            params += [str(ticker), to_utc(start_ts, "start_ts"), to_utc(end_ts, "end_ts")]
        deleted = self.query_df(
            f"DELETE FROM {spec.qualified} WHERE period_interval = %s AND ({' OR '.join(each)}) "
            "RETURNING ticker",
            params,
        )
        if deleted.empty:
            return {}
        return {str(t): int(n) for t, n in deleted["ticker"].value_counts().items()}


class Warehouse(WarehouseQueries):
    """A handle on the warehouse database; cheap to create, opens connections per operation.

    The named queries other layers use (`games`, `markets`, `candles`, ...) are inherited from
    `WarehouseQueries`.
    """

    dialect: Dialect
    #: Independent reads worth asking at once: a server answers each on its own connection; an embedded
    #: file takes its operations in turn, so asking more only splits its queries.
    reads_at_once: int = 1

    def __init__(self, url: WarehouseUrl) -> None:
        self._url = url
        self._schema_checked = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.redacted_url!r})"

    @property
    def redacted_url(self) -> str:
        """The URL with any password replaced by `***`, safe for logs and metadata."""
        return self._url.redacted

    @property
    def url(self) -> WarehouseUrl:
        """The parsed warehouse URL (its repr is redacted)."""
        return self._url

    # -- dialect hooks ------------------------------------------------------------------------------

    @abstractmethod
    def _transaction(self, *, lock_schema: bool = False) -> AbstractContextManager[Transaction]:
        """Context manager yielding a dialect `Transaction` (no lazy schema check)."""

    @abstractmethod
    def _reader(self) -> AbstractContextManager[Transaction]:
        """Context manager yielding a `Transaction` on a short-lived read connection (read-only if possible)."""

    def query_df(self, sql: str, params: Params = None) -> pd.DataFrame:
        """Run a read query outside any transaction (on its own short-lived connection); return a DataFrame.

        Numeric columns come back as `decimal.Decimal` objects, timestamps as tz-aware UTC, dates as
        `datetime.date`; text as pandas strings, integers as int64.
        """
        with self._reader() as reader:
            return reader.query_df(sql, params)

    def close(self) -> None:
        """Release any connection the handle keeps (only in-memory DuckDB keeps one)."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------------------

    def applied_migrations(self) -> list[int]:
        """Versions recorded in `kalshi.schema_migrations` (empty when the schema does not exist yet)."""
        with self._reader() as reader:
            exists = reader.query_df(
                "SELECT count(*) AS n FROM information_schema.tables "
                "WHERE table_catalog = current_database() AND table_schema = %s AND table_name = %s",
                [SCHEMA, "schema_migrations"],
            )
            if int(exists["n"].iloc[0]) == 0:
                return []
            df = reader.query_df(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version")
        return [int(v) for v in df["version"]]

    def ensure_schema(self) -> list[int]:
        """Create schema `kalshi` and apply pending migrations in one transaction; return versions applied.

        Idempotent and safe to call concurrently (PostgreSQL: advisory lock; DuckDB: single-writer file).
        """
        known = {m.version for m in MIGRATIONS}
        if known.issubset(self.applied_migrations()):
            self._schema_checked = True
            return []
        applied_now: list[int] = []
        with self._transaction(lock_schema=True) as tx:
            tx.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, "
                "description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = set(tx.query_df(f"SELECT version FROM {MIGRATIONS_TABLE}")["version"])
            for migration in sorted(MIGRATIONS, key=lambda m: m.version):
                if migration.version in done:
                    continue
                for statement in migration.statements(self.dialect):
                    tx.execute(statement)
                tx.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, description, applied_at) "
                    "VALUES (%s, %s, %s)",
                    [migration.version, migration.description, dt.datetime.now(dt.UTC)],
                )
                applied_now.append(migration.version)
        if applied_now:
            logger.info("warehouse %s: applied migrations %s", self.redacted_url, applied_now)
        self._schema_checked = True
        return applied_now

    def _ensure_once(self) -> None:
        if not self._schema_checked:
            self.ensure_schema()

    # -- transactions ---------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Open one transaction (the schema is created first if needed); an exception rolls it all back."""
        self._ensure_once()
        with self._transaction() as tx:
            yield tx

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the warehouse ready between the block's operations (a backfill's dates, one after another).

        Nothing to keep for a server database; an embedded DuckDB file stays attached while no other
        process waits for it (`DuckDBWarehouse.hold`).
        """
        yield

    def checkpoint(self) -> None:
        """Make the writes so far durable in their final form now rather than at the end of `hold`.

        Nothing to do for a server database; an embedded DuckDB file folds its log into the file
        (`DuckDBWarehouse.checkpoint`).
        """

    def execute(self, sql: str, params: Params = None) -> int:
        """Run one statement in its own transaction and return the affected row count."""
        with self.transaction() as tx:
            return tx.execute(sql, params)

    def upsert(self, table: str, df: pd.DataFrame) -> int:
        """Upsert `df` into `table` in its own transaction (see `Transaction.upsert`)."""
        with self.transaction() as tx:
            return tx.upsert(table, df)


def frame_from_rows(
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    timestamp_columns: Sequence[str],
    integer_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Build a DataFrame from driver rows, keeping Decimals as objects and timestamps tz-aware UTC."""
    df = pd.DataFrame.from_records(list(rows), columns=list(columns), coerce_float=False)
    if len(set(df.columns)) != len(df.columns):
        return df
    for col in timestamp_columns:
        df[col] = pd.to_datetime(df[col], utc=True)
    for col in integer_columns:
        df[col] = integer_series(df[col])
    return df


def integer_series(series: pd.Series) -> pd.Series:
    """Integers as int64, or nullable Int64 when some are missing (never float)."""
    if series.isna().any():
        return pd.Series(pd.array(object_values(series), dtype="Int64"))
    return series.astype("int64")
