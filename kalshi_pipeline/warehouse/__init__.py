"""The warehouse layer: schema `kalshi` and all SQL, on PostgreSQL (psycopg 3) or embedded DuckDB. No Dagster.

```python
from kalshi_pipeline.warehouse import open_warehouse

wh = open_warehouse(url)       # postgresql://... or duckdb:///path (default duckdb:///data/kalshi.duckdb)
wh.ensure_schema()             # idempotent; also done lazily on first transaction / domain query
with wh.transaction() as tx:   # one transaction; an exception rolls everything back
    tx.upsert("candlesticks", df)
    tx.delete_candles("candlesticks", tickers, start_ts, end_ts, period_interval=1)
    tx.execute("UPDATE kalshi.markets SET status = %s WHERE ticker = %s", ["settled", ticker])
wh.query_df("SELECT * FROM kalshi.candlesticks WHERE game_date = %s", [day])
```

Named queries (all SQL other layers need lives in this package, see `queries.py`): `wh.games(game_dates=None,
start=None, end=None)` (one row per game with its tickers, statuses and `all_settled`), `wh.markets(game_dates)`
(the stored markets of some dates), `wh.candles(table, game_dates, columns=None, event_tickers=None,
since=None)` (candle rows by ticker and time), `wh.sample_rows(table, game_dates=None, limit=2000)` (rows for a
schema check), `wh.newest_candle_ts(tickers, period_interval=1)`, `wh.candle_counts(game_date)` (raw / clean /
rejected counts per ticker), `wh.partition_summary(game_dates)` (per market: candles, rejects, first and last
close), `wh.stream_rest_comparison(since, until)` and `wh.stream_served_candles(since, until)` (stream versus
REST candles), `wh.table_counts()`, `wh.applied_migrations()`; writes: `tx.upsert(table, df)` and
`tx.delete_candles(table, tickers, start_ts, end_ts, period_interval=1, source=None)`.
Schema and migrations: see `kalshi_pipeline.warehouse.schema`. Each operation uses its own short-lived
connection (PostgreSQL: ~5-10 ms to connect locally, so no pool; DuckDB: see `duck.py` on file locking).

Parameters use psycopg's style on both dialects (`%s` positional, `%(name)s` named, `%%` literal percent).
Errors are `WarehouseError` subclasses with one-line messages; `WarehouseUnavailable` means the database could
not be reached or went away (the transaction was rolled back), `WarehouseLocked` that a DuckDB file stayed
locked by another process past the lock timeout.
"""

from __future__ import annotations

from kalshi_pipeline.warehouse.base import Transaction, Warehouse
from kalshi_pipeline.warehouse.errors import (
    WarehouseConfigError,
    WarehouseDataError,
    WarehouseError,
    WarehouseLocked,
    WarehouseQueryError,
    WarehouseUnavailable,
)
from kalshi_pipeline.warehouse.schema import (
    MIGRATIONS,
    SCHEMA,
    SETTLED_STATUSES,
    TABLES,
    Migration,
    TableSpec,
    table_spec,
)
from kalshi_pipeline.warehouse.times import to_utc, unix_seconds, unix_seconds_column
from kalshi_pipeline.warehouse.urls import DEFAULT_URL, ENV_VAR, redact_url, resolve_url

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "MIGRATIONS",
    "SCHEMA",
    "SETTLED_STATUSES",
    "TABLES",
    "Migration",
    "TableSpec",
    "Transaction",
    "Warehouse",
    "WarehouseConfigError",
    "WarehouseDataError",
    "WarehouseError",
    "WarehouseLocked",
    "WarehouseQueryError",
    "WarehouseUnavailable",
    "open_warehouse",
    "redact_url",
    "table_spec",
    "to_utc",
    "unix_seconds",
    "unix_seconds_column",
]


def open_warehouse(
    url: str | None = None,
    *,
    lock_timeout: float = 30.0,
    connect_timeout: float = 10.0,
    duckdb_memory_limit_mb: int | None = None,
) -> Warehouse:
    """Open the warehouse at `url` (`postgresql://...` or `duckdb:///path`; None: the embedded default).

    `lock_timeout` bounds how long a DuckDB open waits for another process's lock (default 30 s);
    `duckdb_memory_limit_mb` caps DuckDB's buffer pool in this process (None: `duck.py`'s default); `connect_timeout` bounds a PostgreSQL
    connection attempt. Nothing connects until the first operation. Raises `WarehouseConfigError` for an
    unsupported URL.
    """
    parsed = resolve_url(url)
    if parsed.dialect == "postgres":
        from kalshi_pipeline.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(parsed, connect_timeout=connect_timeout)
    from kalshi_pipeline.warehouse.duck import DuckDBWarehouse

    if duckdb_memory_limit_mb is None:
        return DuckDBWarehouse(parsed, lock_timeout=lock_timeout)
    return DuckDBWarehouse(
        parsed, lock_timeout=lock_timeout, memory_limit_mb=duckdb_memory_limit_mb
    )
