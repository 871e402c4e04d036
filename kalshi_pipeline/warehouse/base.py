"""The dialect-neutral warehouse API: `Warehouse`, `Transaction`, schema migration and domain queries.

SQL parameters use one style everywhere (psycopg's): positional `%s` with a list/tuple, or named `%(name)s`
with a dict; write `%%` for a literal percent sign when parameters are given. When `params` is None the SQL is
sent verbatim. Python lists bind as arrays, so `ticker = ANY(%s)` with a list works on both dialects.
"""

from __future__ import annotations

import datetime as dt
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd

from kalshi_pipeline.warehouse.errors import WarehouseDataError
from kalshi_pipeline.warehouse.frames import PreparedFrame, prepare_frame
from kalshi_pipeline.warehouse.schema import (
    CANDLE_TABLES,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    SCHEMA,
    TABLES,
    TableSpec,
)
from kalshi_pipeline.warehouse.urls import Dialect, WarehouseUrl

logger = logging.getLogger(__name__)

Params = Sequence[Any] | Mapping[str, Any] | None

# Market statuses after which a market's prices no longer move.
SETTLED_STATUSES = ("settled", "finalized", "determined", "amended")


def table_spec(table: str) -> TableSpec:
    """Return the spec of a known table (`candlesticks` or `kalshi.candlesticks`), else raise."""
    name = table.removeprefix(f"{SCHEMA}.") if isinstance(table, str) else table
    spec = TABLES.get(name) if isinstance(name, str) else None
    if spec is None:
        raise WarehouseDataError(
            f"unknown warehouse table {table!r}; known tables: "
            f"{sorted(f'{SCHEMA}.{t}' for t in TABLES)}"
        )
    return spec


def to_utc(value: int | dt.datetime, what: str) -> dt.datetime:
    """Convert Unix seconds or a tz-aware datetime to a UTC datetime (naive datetimes are refused)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise WarehouseDataError(f"{what} must be tz-aware (UTC), got naive {value!r}")
        return value.astimezone(dt.UTC)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WarehouseDataError(
            f"{what} must be Unix seconds (int) or a tz-aware datetime, got {value!r}"
        )
    return dt.datetime.fromtimestamp(value, dt.UTC)


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

    def delete_candles(
        self,
        table: str,
        tickers: Sequence[str] | None,
        start_ts: int | dt.datetime,
        end_ts: int | dt.datetime,
        period_interval: int = 1,
    ) -> int:
        """Delete candles of `tickers` (None = every ticker) with `start_ts <= end_period_ts <= end_ts`.

        Works on `candlesticks`, `candlesticks_raw` and `candlesticks_rejected`; times are Unix seconds or
        tz-aware datetimes. Returns the number of rows deleted.
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
        if tickers is not None:
            ticker_list = [str(t) for t in tickers]
            if not ticker_list:
                return 0
            sql += " AND ticker = ANY(%s)"
            params.append(ticker_list)
        return self.execute(sql, params)


class Warehouse(ABC):
    """A handle on the warehouse database; cheap to create, opens connections per operation."""

    dialect: Dialect

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
    def _transaction(self, *, lock_schema: bool = False) -> Any:
        """Context manager yielding a dialect `Transaction` (no lazy schema check)."""

    @abstractmethod
    def _reader(self) -> Any:
        """Context manager yielding a `Transaction` on a short-lived read connection (read-only if possible)."""

    def query_df(self, sql: str, params: Params = None) -> pd.DataFrame:
        """Run a read query outside any transaction (on its own short-lived connection); return a DataFrame.

        Numeric columns come back as `decimal.Decimal` objects, timestamps as tz-aware UTC, dates as
        `datetime.date`; text as pandas strings, integers as int64.
        """
        with self._reader() as reader:
            return reader.query_df(sql, params)

    def close(self) -> None:  # noqa: B027 - optional hook, most backends keep nothing open
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

    def execute(self, sql: str, params: Params = None) -> int:
        """Run one statement in its own transaction and return the affected row count."""
        with self.transaction() as tx:
            return tx.execute(sql, params)

    def upsert(self, table: str, df: pd.DataFrame) -> int:
        """Upsert `df` into `table` in its own transaction (see `Transaction.upsert`)."""
        with self.transaction() as tx:
            return tx.upsert(table, df)

    # -- domain queries -------------------------------------------------------------------------------

    def games(
        self,
        game_dates: Sequence[dt.date] | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> pd.DataFrame:
        """One row per game (event_ticker) from `kalshi.markets`, ordered by scheduled start.

        Filters combine with AND: `game_dates` keeps games on those dates; `start`/`end` keep games whose
        window [scheduled_start, settlement_ts or close_time] overlaps [start, end] (games with no known
        start or end are kept). Columns: event_ticker, series_ticker, game_date, away_team, home_team,
        scheduled_start, close_time, settlement_ts, n_markets, tickers (sorted list), statuses (sorted list
        of distinct statuses), all_settled (every market settled/finalized/determined/amended).
        """
        self._ensure_once()
        where: list[str] = []
        params: list[Any] = []
        if game_dates is not None:
            dates = [_as_date(d) for d in game_dates]
            if not dates:
                return _empty_games()
            where.append("game_date = ANY(%s)")
            params.append(dates)
        markets = self.query_df(
            "SELECT ticker, event_ticker, series_ticker, game_date, away_team, home_team, status, "
            "scheduled_start, close_time, settlement_ts FROM kalshi.markets"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY event_ticker, ticker",
            params or None,
        )
        if markets.empty:
            return _empty_games()
        rows = []
        for event_ticker, g in markets.groupby("event_ticker", sort=False):
            statuses = sorted({str(s) for s in g["status"].dropna()})
            first = g.iloc[0]
            rows.append(
                {
                    "event_ticker": event_ticker,
                    "series_ticker": first["series_ticker"],
                    "game_date": _first_value(g["game_date"]),
                    "away_team": _first_value(g["away_team"]),
                    "home_team": _first_value(g["home_team"]),
                    "scheduled_start": g["scheduled_start"].min(),
                    "close_time": g["close_time"].max(),
                    "settlement_ts": g["settlement_ts"].max()
                    if g["settlement_ts"].notna().all()
                    else pd.NaT,
                    "n_markets": len(g),
                    "tickers": sorted(g["ticker"]),
                    "statuses": statuses,
                    "all_settled": bool(
                        g["status"].isin(SETTLED_STATUSES).all() or g["settlement_ts"].notna().all()
                    ),
                }
            )
        games = pd.DataFrame(rows, columns=list(_GAMES_COLUMNS))
        for col in ("scheduled_start", "close_time", "settlement_ts"):
            games[col] = pd.to_datetime(games[col], utc=True)
        if start is not None:
            start_utc = to_utc(start, "start")
            finish = games["settlement_ts"].fillna(games["close_time"])
            games = games[finish.isna() | (finish >= start_utc)]
        if end is not None:
            end_utc = to_utc(end, "end")
            games = games[games["scheduled_start"].isna() | (games["scheduled_start"] <= end_utc)]
        return games.sort_values(
            ["scheduled_start", "event_ticker"], na_position="last"
        ).reset_index(drop=True)

    def newest_candle_ts(
        self, tickers: Sequence[str], period_interval: int = 1
    ) -> dict[str, dt.datetime]:
        """Newest stored `end_period_ts` per ticker in `kalshi.candlesticks` (tickers without candles omitted)."""
        self._ensure_once()
        ticker_list = [str(t) for t in tickers]
        if not ticker_list:
            return {}
        df = self.query_df(
            "SELECT ticker, max(end_period_ts) AS newest FROM kalshi.candlesticks "
            "WHERE period_interval = %s AND ticker = ANY(%s) GROUP BY ticker",
            [int(period_interval), ticker_list],
        )
        return {
            str(t): ts.to_pydatetime() for t, ts in zip(df["ticker"], df["newest"], strict=True)
        }

    def candle_counts(self, game_date: dt.date, period_interval: int = 1) -> pd.DataFrame:
        """Per ticker of a game date: counts in candlesticks_raw, candlesticks and candlesticks_rejected.

        Columns: ticker, event_ticker, raw, candles, rejected, first_ts, last_ts (first/last end_period_ts of
        the clean candles, NaT when none), ordered by event_ticker, ticker. `raw == candles + rejected` holds
        when every raw row was either accepted or rejected.
        """
        self._ensure_once()
        day = _as_date(game_date)
        parts = []
        for table, kind in (
            ("candlesticks_raw", "raw"),
            ("candlesticks", "candles"),
            ("candlesticks_rejected", "rejected"),
        ):
            parts.append(
                f"SELECT ticker, max(event_ticker) AS event_ticker, '{kind}' AS kind, count(*) AS n, "
                f"min(end_period_ts) AS first_ts, max(end_period_ts) AS last_ts FROM kalshi.{table} "
                "WHERE game_date = %s AND period_interval = %s GROUP BY ticker"
            )
        df = self.query_df(" UNION ALL ".join(parts), [day, int(period_interval)] * 3)
        columns = ["ticker", "event_ticker", "raw", "candles", "rejected", "first_ts", "last_ts"]
        if df.empty:
            out = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
            out["first_ts"] = pd.Series(dtype="datetime64[us, UTC]")
            out["last_ts"] = pd.Series(dtype="datetime64[us, UTC]")
            for c in ("raw", "candles", "rejected"):
                out[c] = pd.Series(dtype="int64")
            return out
        counts = df.pivot_table(index="ticker", columns="kind", values="n", aggfunc="sum")
        counts = counts.reindex(columns=["raw", "candles", "rejected"]).fillna(0).astype("int64")
        events = df.groupby("ticker")["event_ticker"].agg(
            lambda s: s.dropna().iloc[0] if s.notna().any() else None
        )
        clean = df[df["kind"] == "candles"].set_index("ticker")
        out = counts.join(events).join(clean[["first_ts", "last_ts"]]).reset_index()
        out["first_ts"] = pd.to_datetime(out["first_ts"], utc=True)
        out["last_ts"] = pd.to_datetime(out["last_ts"], utc=True)
        return out[columns].sort_values(["event_ticker", "ticker"]).reset_index(drop=True)

    def partition_summary(
        self, game_dates: Sequence[dt.date], period_interval: int = 1
    ) -> pd.DataFrame:
        """One row per market of the given game dates with its candle coverage and first/last close price.

        Columns: game_date, event_ticker, ticker, team, status, candles, rejected, first_ts, last_ts,
        first_price_close, last_price_close (the earliest and latest non-null `price_close`, Decimal).
        Ordered by game_date, event_ticker, ticker.
        """
        self._ensure_once()
        dates = [_as_date(d) for d in game_dates]
        if not dates:
            return pd.DataFrame(columns=list(_SUMMARY_COLUMNS))
        sql = """
            WITH c AS (
                SELECT ticker, count(*) AS candles, min(end_period_ts) AS first_ts,
                       max(end_period_ts) AS last_ts,
                       min(CASE WHEN price_close IS NOT NULL THEN end_period_ts END) AS first_close_ts,
                       max(CASE WHEN price_close IS NOT NULL THEN end_period_ts END) AS last_close_ts
                FROM kalshi.candlesticks
                WHERE game_date = ANY(%(dates)s) AND period_interval = %(pi)s
                GROUP BY ticker
            ), r AS (
                SELECT ticker, count(*) AS rejected FROM kalshi.candlesticks_rejected
                WHERE game_date = ANY(%(dates)s) AND period_interval = %(pi)s GROUP BY ticker
            )
            SELECT m.game_date, m.event_ticker, m.ticker, m.team, m.status,
                   coalesce(c.candles, 0) AS candles, coalesce(r.rejected, 0) AS rejected,
                   c.first_ts, c.last_ts,
                   f.price_close AS first_price_close, l.price_close AS last_price_close
            FROM kalshi.markets m
            LEFT JOIN c ON c.ticker = m.ticker
            LEFT JOIN r ON r.ticker = m.ticker
            LEFT JOIN kalshi.candlesticks f ON f.ticker = m.ticker
                 AND f.period_interval = %(pi)s AND f.end_period_ts = c.first_close_ts
            LEFT JOIN kalshi.candlesticks l ON l.ticker = m.ticker
                 AND l.period_interval = %(pi)s AND l.end_period_ts = c.last_close_ts
            WHERE m.game_date = ANY(%(dates)s)
            ORDER BY m.game_date, m.event_ticker, m.ticker
        """
        df = self.query_df(sql, {"dates": dates, "pi": int(period_interval)})
        for col in ("candles", "rejected"):
            df[col] = df[col].astype("int64")
        for col in ("first_ts", "last_ts"):
            df[col] = pd.to_datetime(df[col], utc=True)
        return df[list(_SUMMARY_COLUMNS)]

    def table_counts(self) -> dict[str, int]:
        """Row count of every warehouse table (for demos, health checks and metadata)."""
        self._ensure_once()
        sql = " UNION ALL ".join(
            f"SELECT '{name}' AS t, count(*) AS n FROM {spec.qualified}"
            for name, spec in TABLES.items()
        )
        df = self.query_df(sql)
        return {str(t): int(n) for t, n in zip(df["t"], df["n"], strict=True)}


_GAMES_COLUMNS = (
    "event_ticker",
    "series_ticker",
    "game_date",
    "away_team",
    "home_team",
    "scheduled_start",
    "close_time",
    "settlement_ts",
    "n_markets",
    "tickers",
    "statuses",
    "all_settled",
)
_SUMMARY_COLUMNS = (
    "game_date",
    "event_ticker",
    "ticker",
    "team",
    "status",
    "candles",
    "rejected",
    "first_ts",
    "last_ts",
    "first_price_close",
    "last_price_close",
)


def _empty_games() -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype=object) for c in _GAMES_COLUMNS})
    for col in ("scheduled_start", "close_time", "settlement_ts"):
        df[col] = pd.Series(dtype="datetime64[us, UTC]")
    df["n_markets"] = pd.Series(dtype="int64")
    df["all_settled"] = pd.Series(dtype=bool)
    return df


def _first_value(series: pd.Series) -> Any:
    values = series.dropna()
    return values.iloc[0] if len(values) else None


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise WarehouseDataError(f"expected a datetime.date game date, got datetime {value!r}")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise WarehouseDataError(f"expected a datetime.date game date (or 'YYYY-MM-DD'), got {value!r}")


def frame_from_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
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
        return pd.Series(pd.array(series.to_numpy(dtype=object, na_value=None), dtype="Int64"))
    return series.astype("int64")
