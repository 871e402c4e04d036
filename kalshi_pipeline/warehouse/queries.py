"""The named queries other layers run against the warehouse: every read of a domain table lives here.

`Warehouse` (see `base.py`) inherits these methods; each opens its own short-lived read connection and makes
sure the schema exists first. Frames come back with the types `Warehouse.query_df` documents (Decimal money,
tz-aware UTC timestamps, `datetime.date` game dates) and keep their columns when no row matches.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from kalshi_pipeline.warehouse.candle_sql import (
    as_date,
    candles_select,
    clean_state_select,
    date_game_filter,
    date_list,
    first_traded_select,
    grid_select,
)
from kalshi_pipeline.warehouse.errors import WarehouseDataError
from kalshi_pipeline.warehouse.schema import (
    CANDLE_VALUE_COLUMNS,
    CANDLESTICKS,
    CANDLESTICKS_WS,
    GAME_PROBABILITIES,
    GAME_STATES,
    MARKETS,
    SETTLED_STATUSES,
    TABLES,
    TableSpec,
    table_spec,
)
from kalshi_pipeline.warehouse.times import to_utc, unix_seconds

if TYPE_CHECKING:
    from kalshi_pipeline.warehouse.base import Params


class CleanState(NamedTuple):
    """What `Warehouse.clean_state` finds for one game date."""

    #: REST raw rows in scope.
    raw_rows: int
    #: The newest raw end time (Unix s).
    last_end: int
    #: Whether the clean rows are exactly what validating the raw rows would write.
    current: bool


#: Rows a schema check reads back by default.
SAMPLE_ROWS = 2000


class WarehouseQueries(ABC):
    """The domain queries of `Warehouse`, written against its two primitives below."""

    @abstractmethod
    def query_df(self, sql: str, params: Params = None) -> pd.DataFrame:
        """Run a read query on its own short-lived connection and return its rows."""

    @abstractmethod
    def _ensure_once(self) -> None:
        """Create the schema if this handle has not checked it yet."""

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
            dates = [as_date(d) for d in game_dates]
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
        day = as_date(game_date)
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

    def game_candle_counts(
        self, game_dates: Sequence[dt.date], period_interval: int = 1
    ) -> pd.DataFrame:
        """Per game of some dates: REST candle rows in candlesticks_raw, candlesticks and the rejects.

        Columns: event_ticker, raw, candles, rejected (int64), by event_ticker. Rows the stream wrote
        (`source = 'ws'`) are left out, so `raw == candles + rejected` holds for a game whose raw rows
        were all cleaned.
        """
        self._ensure_once()
        columns = ["event_ticker", "raw", "candles", "rejected"]
        parts = [
            f"SELECT event_ticker, '{kind}' AS kind, count(*) AS n FROM kalshi.{table} "
            "WHERE game_date = ANY(%s) AND period_interval = %s "
            "AND (source IS NULL OR source <> 'ws') GROUP BY event_ticker"
            for table, kind in (
                ("candlesticks_raw", "raw"),
                ("candlesticks", "candles"),
                ("candlesticks_rejected", "rejected"),
            )
        ]
        df = self.query_df(
            " UNION ALL ".join(parts), [date_list(game_dates), int(period_interval)] * 3
        )
        if df.empty:
            return pd.DataFrame(
                {c: pd.Series(dtype=object if c == "event_ticker" else "int64") for c in columns}
            )
        counts = df.pivot_table(index="event_ticker", columns="kind", values="n", aggfunc="sum")
        counts = counts.reindex(columns=columns[1:]).fillna(0).astype("int64")
        return counts.reset_index().sort_values("event_ticker").reset_index(drop=True)[columns]

    def clean_state(
        self,
        game_dates: Sequence[dt.date],
        event_tickers: Collection[str],
        since: int | dt.datetime | None = None,
        period_interval: int = 1,
    ) -> dict[dt.date, CleanState]:
        """Per game date with raw rows: whether its clean rows are exactly what validating them would write.

        Over `event_tickers` and candles ending at or after `since`. A date is current when every raw row
        has a clean twin (same key and source, stamped no earlier), no other clean row lies at or before its
        newest raw end time, and nothing is rejected (a rejection may depend on which markets are stored,
        so such a date is always validated again). Dates without raw rows are absent: nothing to validate.
        """
        self._ensure_once()
        if not game_dates or not event_tickers:
            return {}
        sql, params = clean_state_select(game_dates, event_tickers, since, period_interval)
        df = self.query_df(sql, params)
        rejected: set[dt.date] = set()
        raw: list[tuple[dt.date, int, int, int, bool]] = []
        for day, kind, n, last_end, matched, extra in df[
            ["game_date", "kind", "n", "last_end", "matched", "extra"]
        ].itertuples(index=False):
            if kind == "raw":
                raw.append(
                    (as_date(day), int(n), int(matched), unix_seconds(last_end) or 0, bool(extra))
                )
            else:
                rejected.add(as_date(day))
        return {
            day: CleanState(
                raw_rows=n,
                last_end=last_end,
                current=n == matched and not extra and day not in rejected,
            )
            for day, n, matched, last_end, extra in sorted(raw)
        }

    def partition_summary(
        self, game_dates: Sequence[dt.date], period_interval: int = 1
    ) -> pd.DataFrame:
        """One row per market of the given game dates with its candle coverage and first/last close price.

        Columns: game_date, event_ticker, ticker, team, status, candles, rejected, first_ts, last_ts,
        first_price_close, last_price_close (the earliest and latest non-null `price_close`, Decimal).
        Ordered by game_date, event_ticker, ticker.
        """
        self._ensure_once()
        dates = [as_date(d) for d in game_dates]
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

    def markets(self, game_dates: Sequence[dt.date]) -> pd.DataFrame:
        """Every `kalshi.markets` row (all columns, as stored) of some game dates, by event_ticker, ticker."""
        self._ensure_once()
        return self.query_df(
            f"SELECT * FROM {MARKETS.qualified} WHERE game_date = ANY(%s) "
            "ORDER BY event_ticker, ticker",
            [date_list(game_dates)],
        )

    def candles(
        self,
        table: str,
        game_dates: Sequence[dt.date],
        *,
        columns: Sequence[str] | None = None,
        event_tickers: Collection[str] | None = None,
        since: int | dt.datetime | None = None,
    ) -> pd.DataFrame:
        """Rows of a candle table for some game dates, ordered by ticker and end_period_ts.

        `table` is `candlesticks`, `candlesticks_raw`, `candlesticks_rejected` or `candlesticks_ws`;
        `columns` picks some columns (default: all, as stored); `event_tickers` keeps only those games
        (None: every game); `since` (Unix s or tz-aware) keeps candles with `end_period_ts >= since`.
        """
        self._ensure_once()
        sql, params = candles_select(
            table, game_dates, columns=columns, event_tickers=event_tickers, since=since
        )
        return self.query_df(sql, params)

    def first_traded_game(
        self,
        game_date: dt.date,
        event_tickers: Collection[str] | None = None,
        since: int | dt.datetime | None = None,
    ) -> str | None:
        """The game of a date's first clean candle with volume, by ticker then end time (None: no trade).

        Over `event_tickers` (None: every game) and candles ending at or after `since`.
        """
        self._ensure_once()
        sql, params = first_traded_select(game_date, event_tickers, since)
        found = self.query_df(sql, params)
        return None if found.empty else str(found["event_ticker"].iloc[0])

    def candle_grid(
        self, game_dates: Sequence[dt.date], event_tickers: Collection[str] | None = None
    ) -> pd.DataFrame:
        """What the minute-grid check needs of `kalshi.candlesticks`, one row per market.

        Columns: ticker, event_ticker, n_rows (stored candles, any interval), traded (those with a close
        price), last_end (the newest end time, Unix s) and minutes (the 1-minute candles' end times, Unix s,
        ascending; an int64 array). `event_tickers` keeps only those games.
        """
        self._ensure_once()
        sql, params = grid_select(game_dates, event_tickers)
        df = self.query_df(sql, params)
        for column in ("n_rows", "traded", "last_end"):
            df[column] = df[column].astype("int64")
        minutes = [
            np.zeros(0, dtype=np.int64) if m is None else np.sort(np.asarray(m, dtype=np.int64))
            for m in df["minutes"]
        ]
        df["minutes"] = pd.Series(minutes, index=df.index, dtype=object)
        return df

    def sample_rows(
        self, table: str, game_dates: Sequence[dt.date] | None = None, limit: int = SAMPLE_ROWS
    ) -> pd.DataFrame:
        """Up to `limit` whole rows (`SELECT *`, as stored) of a table, of some game dates when given.

        What a schema check reads back: the columns come back even when no row matches.
        """
        spec = table_spec(table)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise WarehouseDataError(f"sample limit must be a non-negative int, got {limit!r}")
        self._ensure_once()
        if game_dates is None:
            return self.query_df(f"SELECT * FROM {spec.qualified} LIMIT {limit}")
        if "game_date" not in spec.column_names:
            raise WarehouseDataError(f"{spec.qualified} has no game_date to sample by")
        return self.query_df(
            f"SELECT * FROM {spec.qualified} WHERE game_date = ANY(%s) LIMIT {limit}",
            [date_list(game_dates)],
        )

    def stream_rest_comparison(self, since: dt.datetime, until: dt.datetime) -> pd.DataFrame:
        """Minutes ending in [since, until] the stream built completely and REST has since replaced.

        One row per 1-minute candle present both in `kalshi.candlesticks_ws` with `complete` and in
        `kalshi.candlesticks` with a REST source (`source <> 'ws'`, ingested after the minute closed):
        ticker, end_period_ts, and `differs` (True when any price or count field differs, NULLs equal).
        Ordered by end_period_ts, ticker.
        """
        self._ensure_once()
        differs = " OR ".join(f"w.{c} IS DISTINCT FROM c.{c}" for c in CANDLE_VALUE_COLUMNS)
        df = self.query_df(
            f"SELECT w.ticker, w.end_period_ts, CASE WHEN {differs} THEN 1 ELSE 0 END AS differs "
            f"FROM {CANDLESTICKS_WS.qualified} AS w JOIN {CANDLESTICKS.qualified} AS c "
            "ON c.ticker = w.ticker AND c.period_interval = w.period_interval "
            "AND c.end_period_ts = w.end_period_ts "
            "WHERE w.complete AND c.source <> 'ws' AND w.period_interval = 1 "
            "AND w.end_period_ts >= %(since)s AND w.end_period_ts <= %(until)s "
            "AND c.ingested_at >= c.end_period_ts "
            "ORDER BY w.end_period_ts, w.ticker",
            {"since": to_utc(since, "since"), "until": to_utc(until, "until")},
        )
        df["differs"] = df["differs"].astype(bool)
        return df

    def stream_served_candles(self, since: dt.datetime, until: dt.datetime) -> int:
        """How many `kalshi.candlesticks` rows ending in [since, until] are still the stream's (`source = 'ws'`)."""
        self._ensure_once()
        df = self.query_df(
            f"SELECT count(*) AS n FROM {CANDLESTICKS.qualified} WHERE source = 'ws' "
            "AND end_period_ts >= %(since)s AND end_period_ts <= %(until)s",
            {"since": to_utc(since, "since"), "until": to_utc(until, "until")},
        )
        return int(df["n"].iloc[0])

    def game_states(
        self, game_dates: Sequence[dt.date], event_tickers: Collection[str] | None = None
    ) -> pd.DataFrame:
        """Every `kalshi.game_states` row (as stored) of some game dates, by event_ticker, observed_at."""
        return self._game_rows(GAME_STATES, "observed_at", game_dates, event_tickers)

    def game_probabilities(
        self, game_dates: Sequence[dt.date], event_tickers: Collection[str] | None = None
    ) -> pd.DataFrame:
        """Every `kalshi.game_probabilities` row (as stored) of some dates, by event_ticker, minute, ticker."""
        return self._game_rows(GAME_PROBABILITIES, "minute_ts, ticker", game_dates, event_tickers)

    def _game_rows(
        self,
        spec: TableSpec,
        order: str,
        game_dates: Sequence[dt.date],
        event_tickers: Collection[str] | None,
    ) -> pd.DataFrame:
        self._ensure_once()
        where, params = date_game_filter(game_dates, event_tickers)
        return self.query_df(
            f"SELECT * FROM {spec.qualified} WHERE {' AND '.join(where)} "
            f"ORDER BY event_ticker, {order}",
            params,
        )


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
