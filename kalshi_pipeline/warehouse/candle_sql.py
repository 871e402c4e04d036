"""SQL over the candle tables shared by `Warehouse` reads and `Transaction` reads (both dialects).

`candles_select` is the one way to read a candle table's rows by game date, game and time; `clean_state`
tells, per game date, whether `kalshi.candlesticks` already holds exactly what validating the date's raw rows
would write, so a clean step can leave such a date alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from kalshi_pipeline.warehouse.errors import WarehouseDataError
from kalshi_pipeline.warehouse.schema import TableSpec, table_spec
from kalshi_pipeline.warehouse.times import to_utc


def candle_table(table: str) -> TableSpec:
    """The spec of a candle table (one keyed by ticker, game date and end time), else a clear error."""
    spec = table_spec(table)
    if not {"ticker", "game_date", "end_period_ts"} <= set(spec.column_names):
        raise WarehouseDataError(f"{spec.qualified} is not a candle table")
    return spec


def select_list(spec: TableSpec, columns: Sequence[str] | None) -> str:
    """The select list: `*`, or the named columns after checking each belongs to the table."""
    if columns is None:
        return "*"
    unknown = [c for c in columns if c not in spec.column_names]
    if unknown or not columns:
        raise WarehouseDataError(
            f"{spec.qualified} has no columns {unknown}; it has {list(spec.column_names)}"
        )
    return ", ".join(columns)


def as_date(value: Any) -> dt.date:
    """A game date from a `datetime.date` or an ISO string, else a clear error."""
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


def date_list(values: Sequence[dt.date]) -> list[dt.date]:
    """Game dates as a list bound to `= ANY(%s)` (a single date or string is refused)."""
    if isinstance(values, str | dt.date):
        raise WarehouseDataError(f"expected a list of game dates, got the single value {values!r}")
    return [as_date(d) for d in values]


def date_game_filter(
    game_dates: Sequence[dt.date],
    event_tickers: Collection[str] | None,
    since: int | dt.datetime | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Conditions (to AND) and parameters keeping rows of `game_dates`, and of `event_tickers` when given,
    ending at or after `since` when given (Unix s or tz-aware)."""
    where = ["game_date = ANY(%(dates)s)"]
    params: dict[str, Any] = {"dates": date_list(game_dates)}
    if event_tickers is not None:
        where.append("event_ticker = ANY(%(events)s)")
        params["events"] = sorted({str(e) for e in event_tickers})
    if since is not None:
        where.append("end_period_ts >= %(since)s")
        params["since"] = to_utc(since, "since")
    return where, params


def candles_select(
    table: str,
    game_dates: Sequence[dt.date],
    *,
    columns: Sequence[str] | None = None,
    event_tickers: Collection[str] | None = None,
    since: int | dt.datetime | None = None,
    count: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The query of `Warehouse.candles` (rows by ticker and end time) and its parameters.

    With `count`, the query counts those rows instead (one row, column `n`).
    """
    spec = candle_table(table)
    names = select_list(spec, columns)
    where, params = date_game_filter(game_dates, event_tickers, since)
    if count:
        return f"SELECT count(*) AS n FROM {spec.qualified} WHERE {' AND '.join(where)}", params
    sql = (
        f"SELECT {names} FROM {spec.qualified} WHERE {' AND '.join(where)} "
        "ORDER BY ticker, end_period_ts"
    )
    return sql, params


# Per game date, over the run's games and from `since`, in one round trip: the raw REST rows, how many have a
# clean twin (same key and source, stamped no earlier than the raw row), the newest raw end time, and whether
# a clean row without a raw twin ends at or before it (`extra`: a clean run would delete and rewrite it); then
# the rejected rows. The plan must hold without fresh statistics, since a run asks right after loading the
# dates: each date is joined on its own (~8.5k rows a table, found by the `game_date` index), and a FULL JOIN,
# which Postgres cannot run as a nested loop, pairs the twins in one in-memory hash. One join over all the
# dates, estimated at a few hundred rows where there were 255k, ran as a nested loop of primary-key probes
# and sorted on disk: 2.4-4.7 s for 30 dates in a fresh database and 4-5 s among a season's rows on this
# loaded machine, against 0.5-1 s this way.
_SCOPE = (
    "{t}.game_date = ANY(%(dates)s) AND {t}.period_interval = %(pi)s "
    "AND {t}.event_ticker = ANY(%(events)s) AND {t}.end_period_ts >= %(since)s"
)
_DAY_SCOPE = (
    "{t}.game_date = d.game_date AND {t}.period_interval = %(pi)s "
    "AND {t}.event_ticker = ANY(%(events)s) AND {t}.end_period_ts >= %(since)s"
)
_CLEAN_STATE = f"""
SELECT d.game_date, 'raw' AS kind, s.n, s.last_end, s.matched, s.extra
FROM unnest(CAST(%(dates)s AS DATE[])) AS d(game_date)
CROSS JOIN LATERAL (
    SELECT count(r.ticker) AS n, max(r.end_period_ts) AS last_end,
           sum(CASE WHEN c.source = r.source AND c.ingested_at >= r.ingested_at THEN 1 ELSE 0 END)
               AS matched,
           CASE WHEN min(CASE WHEN r.ticker IS NULL THEN c.end_period_ts END) <= max(r.end_period_ts)
                THEN 1 ELSE 0 END AS extra
    FROM (
        SELECT r.ticker, r.end_period_ts, r.source, r.ingested_at FROM kalshi.candlesticks_raw r
        WHERE {_DAY_SCOPE.format(t="r")}
    ) r
    FULL JOIN (
        SELECT c.ticker, c.end_period_ts, c.source, c.ingested_at FROM kalshi.candlesticks c
        WHERE {_DAY_SCOPE.format(t="c")}
    ) c ON c.ticker = r.ticker AND c.end_period_ts = r.end_period_ts
) s
WHERE s.n > 0
UNION ALL
SELECT x.game_date, 'rejected' AS kind, count(*) AS n, NULL AS last_end, NULL AS matched,
       NULL AS extra
FROM kalshi.candlesticks_rejected x
WHERE {_SCOPE.format(t="x")}
GROUP BY x.game_date
"""


def clean_state_select(
    game_dates: Sequence[dt.date],
    event_tickers: Collection[str],
    since: int | dt.datetime | None,
    period_interval: int,
) -> tuple[str, dict[str, Any]]:
    """The query behind `Warehouse.clean_state` and its parameters."""
    params = {
        "dates": sorted(set(date_list(game_dates))),
        "events": sorted({str(e) for e in event_tickers}),
        "since": to_utc(since if since is not None else 0, "since"),
        "pi": int(period_interval),
    }
    return _CLEAN_STATE, params


def first_traded_select(
    game_date: dt.date, event_tickers: Collection[str] | None, since: int | dt.datetime | None
) -> tuple[str, dict[str, Any]]:
    """The query behind `Warehouse.first_traded_game` and its parameters."""
    where, params = date_game_filter([game_date], event_tickers, since)
    where.append("volume > 0")
    sql = (
        f"SELECT event_ticker FROM kalshi.candlesticks WHERE {' AND '.join(where)} "
        "ORDER BY ticker, end_period_ts LIMIT 1"
    )
    return sql, params


def grid_select(
    game_dates: Sequence[dt.date], event_tickers: Collection[str] | None
) -> tuple[str, dict[str, Any]]:
    """The query behind `Warehouse.candle_grid` and its parameters (one row per market)."""
    where, params = date_game_filter(game_dates, event_tickers)
    # date_part (a double) rather than extract (Postgres: numeric, several times slower per row); the
    # minutes are aggregated unordered and sorted by the reader, which saves a sort per market.
    epoch = "CAST(date_part('epoch', end_period_ts) AS BIGINT)"
    sql = (
        f"SELECT ticker, event_ticker, count(*) AS n_rows, count(price_close) AS traded, "
        f"max({epoch}) AS last_end, "
        f"array_agg({epoch}) FILTER (WHERE period_interval = 1) AS minutes "
        f"FROM kalshi.candlesticks WHERE {' AND '.join(where)} "
        "GROUP BY ticker, event_ticker ORDER BY ticker"
    )
    return sql, params
