"""Table definitions and the ordered, per-dialect migrations that build schema `kalshi`.

Every table is described once as a `TableSpec` (column names, logical types, primary key, indexes); DDL for
PostgreSQL and DuckDB is rendered from it, and `Transaction.upsert` validates DataFrames against it.

Migrations are the ordered list `MIGRATIONS`. Each `Migration` has a unique, increasing `version` and the
statements for both dialects (`postgres` and `duckdb`). `Warehouse.ensure_schema()` applies, in one
transaction, every migration whose version is not yet in `kalshi.schema_migrations (version, applied_at)`;
on PostgreSQL it first takes a transaction-scoped advisory lock so concurrent callers serialize, on DuckDB the
file lock already allows a single writer. Applied migrations are never edited. The one table outside them,
`kalshi.rate_budget`, is created by `rate_budget.py` itself: the shared budget may live in a database other
than the warehouse (`KALSHI_RATE_BUDGET_URL`), where no migrations run.

Migration 1 built the market and candle tables, migration 2 the WebSocket stream tables (`ticks`, `trades`,
`stream_events`, `candlesticks_ws`), migration 5 added the settlement bounds and series categories to
`markets`, migration 6 dropped the candle tables' secondary indexes on DuckDB (see `_V6`), migration 7 dropped
the `(event_ticker, end_period_ts)` index of the REST candle tables on PostgreSQL (see `_V7`). To add a table
(say `kalshi.orderbook_snapshots`):

1. define `SNAPSHOTS = TableSpec("orderbook_snapshots", columns=(Column("ticker", TEXT, nullable=False), ...),
   primary_key=(...), indexes=(("ticker", "ts"),))` below;
2. append `Migration(version=<last + 1>, description="orderbook snapshots", **_both(SNAPSHOTS))` to
   `MIGRATIONS`;
3. add the spec to `TABLES` so `upsert` accepts it.

To change an existing table, update its spec to the new shape (the spec always describes the latest schema)
and append a migration with idempotent hand-written statements for both dialects, e.g.
`ALTER TABLE kalshi.markets ADD COLUMN IF NOT EXISTS league TEXT`: migration 1 renders from the current specs,
so on a fresh database the column already exists when the later migration runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from kalshi_pipeline.warehouse.errors import WarehouseDataError
from kalshi_pipeline.warehouse.urls import Dialect

SCHEMA = "kalshi"

#: Values of `kalshi.markets.status` after which a market's prices no longer move.
SETTLED_STATUSES: frozenset[str] = frozenset({"settled", "finalized", "determined", "amended"})

LogicalType = Literal["text", "json", "int", "price", "count", "timestamptz", "date", "bool"]
TEXT: LogicalType = "text"
JSON: LogicalType = "json"
INT: LogicalType = "int"
PRICE: LogicalType = "price"
COUNT: LogicalType = "count"
TIMESTAMPTZ: LogicalType = "timestamptz"
DATE: LogicalType = "date"
BOOL: LogicalType = "bool"

# Prices are dollars with up to 6 fractional digits (Kalshi's fixed point uses 4); counts are fixed-point
# contract counts (Kalshi's `_fp` strings use 2 fractional digits).
DECIMAL_SHAPES: dict[str, tuple[int, int]] = {"price": (18, 6), "count": (24, 6)}

_SQL_TYPES: dict[Dialect, dict[str, str]] = {
    "postgres": {
        "text": "TEXT",
        "json": "TEXT",
        "int": "INTEGER",
        "price": "NUMERIC(18,6)",
        "count": "NUMERIC(24,6)",
        "timestamptz": "TIMESTAMPTZ",
        "date": "DATE",
        "bool": "BOOLEAN",
    },
    "duckdb": {
        "text": "VARCHAR",
        "json": "VARCHAR",
        "int": "INTEGER",
        "price": "DECIMAL(18,6)",
        "count": "DECIMAL(24,6)",
        "timestamptz": "TIMESTAMPTZ",
        "date": "DATE",
        "bool": "BOOLEAN",
    },
}


def sql_type(logical: str, dialect: Dialect) -> str:
    """Return the column type used for a logical type in a dialect."""
    return _SQL_TYPES[dialect][logical]


@dataclass(frozen=True)
class Column:
    """One table column: name, logical type, nullability, and whether the warehouse fills it when omitted."""

    name: str
    type: LogicalType
    nullable: bool = True
    default_now: bool = False


@dataclass(frozen=True)
class TableSpec:
    """A table of schema `kalshi`: ordered columns, primary key and secondary indexes."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = field(default=())

    @property
    def qualified(self) -> str:
        """The schema-qualified table name, e.g. `kalshi.candlesticks`."""
        return f"{SCHEMA}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        """The column names in table order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        """Return the column called `name`."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(name: str, type_: LogicalType, nullable: bool = True) -> Column:
    return Column(name, type_, nullable)


_INGESTED_AT = Column("ingested_at", TIMESTAMPTZ, nullable=False, default_now=True)

MARKETS = TableSpec(
    "markets",
    columns=(
        _c("ticker", TEXT, nullable=False),
        _c("event_ticker", TEXT, nullable=False),
        _c("series_ticker", TEXT, nullable=False),
        _c("game_date", DATE),
        _c("away_team", TEXT),
        _c("home_team", TEXT),
        _c("team", TEXT),
        _c("title", TEXT),
        _c("yes_sub_title", TEXT),
        _c("status", TEXT),
        _c("result", TEXT),
        _c("open_time", TIMESTAMPTZ),
        _c("close_time", TIMESTAMPTZ),
        _c("expected_expiration_time", TIMESTAMPTZ),
        _c("scheduled_start", TIMESTAMPTZ),
        _c("scheduled_start_source", TEXT),
        _c("settlement_ts", TIMESTAMPTZ),
        _c("settlement_value_dollars", PRICE),
        _c("last_price_dollars", PRICE),
        _c("volume", COUNT),
        _c("open_interest", COUNT),
        _c("source", TEXT),
        _c("updated_time", TIMESTAMPTZ),
        _INGESTED_AT,
        # Migration 5: how a scalar settlement is bounded, its floor, and the series' categories (a JSON
        # array of strings; None when the exchange did not say).
        _c("settlement_bounds_type", TEXT),
        _c("settlement_floor_dollars", PRICE),
        _c("series_categories", JSON),
    ),
    primary_key=("ticker",),
    indexes=(("event_ticker",), ("game_date",), ("status",)),
)

_CANDLE_KEY = (
    _c("ticker", TEXT, nullable=False),
    _c("event_ticker", TEXT, nullable=False),
    _c("series_ticker", TEXT, nullable=False),
    _c("game_date", DATE),
    _c("period_interval", INT, nullable=False),
    _c("end_period_ts", TIMESTAMPTZ, nullable=False),
)
#: The value columns of a candle, in table order: prices in dollars, then counts in contracts. The client
#: names the same fields `kalshi_pipeline.kalshi.candles.CANDLE_VALUE_FIELDS` (a test keeps them equal).
CANDLE_PRICE_COLUMNS = tuple(
    f"{group}_{part}"
    for group, parts in (
        ("price", ("open", "high", "low", "close", "mean", "previous")),
        ("yes_bid", ("open", "high", "low", "close")),
        ("yes_ask", ("open", "high", "low", "close")),
    )
    for part in parts
)
CANDLE_COUNT_COLUMNS = ("volume", "open_interest")
CANDLE_VALUE_COLUMNS = (*CANDLE_PRICE_COLUMNS, *CANDLE_COUNT_COLUMNS)
_CANDLE_VALUES = (
    *(_c(name, PRICE) for name in CANDLE_PRICE_COLUMNS),
    *(_c(name, COUNT) for name in CANDLE_COUNT_COLUMNS),
)
_CANDLE_PK = ("ticker", "period_interval", "end_period_ts")
_CANDLE_INDEXES = (("game_date",), ("event_ticker", "end_period_ts"))

CANDLESTICKS_RAW = TableSpec(
    "candlesticks_raw",
    columns=(*_CANDLE_KEY, _c("source", TEXT), _c("payload", JSON, nullable=False), _INGESTED_AT),
    primary_key=_CANDLE_PK,
    indexes=_CANDLE_INDEXES,
)

CANDLESTICKS = TableSpec(
    "candlesticks",
    columns=(*_CANDLE_KEY, *_CANDLE_VALUES, _c("source", TEXT), _INGESTED_AT),
    primary_key=_CANDLE_PK,
    indexes=_CANDLE_INDEXES,
)

# Rejected rows failed validation, so only the key is required.
CANDLESTICKS_REJECTED = TableSpec(
    "candlesticks_rejected",
    columns=(
        _c("ticker", TEXT, nullable=False),
        _c("event_ticker", TEXT),
        _c("series_ticker", TEXT),
        _c("game_date", DATE),
        _c("period_interval", INT, nullable=False),
        _c("end_period_ts", TIMESTAMPTZ, nullable=False),
        *_CANDLE_VALUES,
        _c("source", TEXT),
        _INGESTED_AT,
        _c("reasons", TEXT, nullable=False),
        _c("payload", JSON),
    ),
    primary_key=_CANDLE_PK,
    indexes=_CANDLE_INDEXES,
)

# WebSocket stream tables (written by `kalshi_pipeline.warehouse.stream`).
TICKS = TableSpec(
    "ticks",
    columns=(
        _c("ticker", TEXT, nullable=False),
        _c("ts", TIMESTAMPTZ, nullable=False),
        _c("received_at", TIMESTAMPTZ, nullable=False),
        _c("price", PRICE),
        _c("yes_bid", PRICE),
        _c("yes_ask", PRICE),
        _c("yes_bid_size", COUNT),
        _c("yes_ask_size", COUNT),
        _c("volume", COUNT),
        _c("open_interest", COUNT),
        _INGESTED_AT,
    ),
    primary_key=("ticker", "ts"),
)

TRADES = TableSpec(
    "trades",
    columns=(
        _c("trade_id", TEXT, nullable=False),
        _c("ticker", TEXT, nullable=False),
        _c("ts", TIMESTAMPTZ, nullable=False),
        _c("received_at", TIMESTAMPTZ),
        _c("yes_price", PRICE, nullable=False),
        _c("no_price", PRICE),
        _c("count", COUNT, nullable=False),
        _c("taker_outcome_side", TEXT),
        _c("taker_book_side", TEXT),
        _c("is_block_trade", BOOL),
        _c("source", TEXT, nullable=False),
        _INGESTED_AT,
    ),
    primary_key=("trade_id",),
    indexes=(("ticker", "ts"),),
)

STREAM_EVENTS = TableSpec(
    "stream_events",
    columns=(
        _c("event_id", TEXT, nullable=False),
        _c("run_id", TEXT),
        _c("event_at", TIMESTAMPTZ, nullable=False),
        _c("kind", TEXT, nullable=False),
        _c("connection", INT),
        _c("channel", TEXT),
        _c("sid", INT),
        _c("market_tickers", TEXT),
        _c("since_ts", TIMESTAMPTZ),
        _c("until_ts", TIMESTAMPTZ),
        _c("code", INT),
        _c("detail", TEXT),
        _INGESTED_AT,
    ),
    primary_key=("event_id",),
    indexes=(("event_at",), ("kind",)),
)

# Every stream-built candle as last built (kept after REST replaces it in `candlesticks`, for the audit).
CANDLESTICKS_WS = TableSpec(
    "candlesticks_ws",
    columns=(
        *_CANDLE_KEY,
        *_CANDLE_VALUES,
        _c("complete", BOOL, nullable=False),
        _c("last_event_ts", TIMESTAMPTZ),
        _INGESTED_AT,
    ),
    primary_key=_CANDLE_PK,
    indexes=_CANDLE_INDEXES,
)

# Live game data (written by `kalshi_pipeline.defs.games`): observed game states and per-minute probabilities.
GAME_STATES = TableSpec(
    "game_states",
    columns=(
        _c("event_ticker", TEXT, nullable=False),
        _c("observed_at", TIMESTAMPTZ, nullable=False),
        _c("milestone_id", TEXT, nullable=False),
        _c("game_date", DATE),
        #: `live_data` (a poll of the live-data endpoints) or `pbp` (replayed from the play-by-play).
        _c("source", TEXT, nullable=False),
        _c("status", TEXT),
        _c("period", INT),
        _c("clock", TEXT),
        _c("clock_seconds", INT),
        _c("home_points", INT),
        _c("away_points", INT),
        _c("winner", TEXT),
        #: Comma-separated game-state fields the details lacked (empty when all were read).
        _c("missing_keys", TEXT, nullable=False),
        _c("details", JSON, nullable=False),
        _INGESTED_AT,
    ),
    primary_key=("event_ticker", "observed_at"),
    indexes=(("game_date",),),
)

GAME_PROBABILITIES = TableSpec(
    "game_probabilities",
    columns=(
        _c("ticker", TEXT, nullable=False),
        #: `candles`: the minute's row computed from `kalshi.candlesticks` (minute_ts on the minute);
        #: `stream`: a websocket-mode row written within seconds of a quote, trade or game-state change,
        #: minute_ts being the exchange time of that change (sub-minute).
        _c("source", TEXT, nullable=False),
        _c("minute_ts", TIMESTAMPTZ, nullable=False),
        _c("event_ticker", TEXT, nullable=False),
        _c("game_date", DATE),
        _c("team", TEXT),
        #: `mid`, `last` or NULL (no price).
        _c("method", TEXT),
        _c("raw_price", PRICE),
        _c("probability", PRICE),
        #: Sum of the game's raw prices minus 1 at this minute (NULL when an outcome has no price).
        _c("overround", PRICE),
        _c("quote_age_s", INT),
        _c("state_observed_at", TIMESTAMPTZ),
        _c("status", TEXT),
        _c("period", INT),
        _c("clock", TEXT),
        _c("home_points", INT),
        _c("away_points", INT),
        _INGESTED_AT,
    ),
    primary_key=("ticker", "source", "minute_ts"),
    indexes=(("game_date",), ("event_ticker", "minute_ts")),
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        MARKETS,
        CANDLESTICKS_RAW,
        CANDLESTICKS,
        CANDLESTICKS_REJECTED,
        TICKS,
        TRADES,
        STREAM_EVENTS,
        CANDLESTICKS_WS,
        GAME_STATES,
        GAME_PROBABILITIES,
    )
}
CANDLE_TABLES = frozenset({"candlesticks_raw", "candlesticks", "candlesticks_rejected"})


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


def index_name(spec: TableSpec, columns: tuple[str, ...]) -> str:
    """The name of `spec`'s secondary index on `columns`, e.g. `candlesticks_game_date_idx`."""
    return f"{spec.name}_{'_'.join(columns)}_idx"


def create_table_sql(spec: TableSpec, dialect: Dialect) -> tuple[str, ...]:
    """Render `CREATE TABLE IF NOT EXISTS` plus its `CREATE INDEX IF NOT EXISTS` statements for a dialect."""
    lines = []
    for col in spec.columns:
        line = f"    {col.name} {sql_type(col.type, dialect)}"
        if not col.nullable:
            line += " NOT NULL"
        if col.default_now:
            line += " DEFAULT now()" if dialect == "postgres" else " DEFAULT current_timestamp"
        lines.append(line)
    lines.append(f"    PRIMARY KEY ({', '.join(spec.primary_key)})")
    body = ",\n".join(lines)
    statements = [f"CREATE TABLE IF NOT EXISTS {spec.qualified} (\n{body}\n)"]
    for cols in spec.indexes:
        name = index_name(spec, cols)
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {name} ON {spec.qualified} ({', '.join(cols)})"
        )
    return tuple(statements)


@dataclass(frozen=True)
class Migration:
    """One schema step: a version number, a description, and its statements for each dialect."""

    version: int
    description: str
    postgres: Sequence[str]
    duckdb: Sequence[str]

    def statements(self, dialect: Dialect) -> Sequence[str]:
        """The statements of this migration for `dialect`."""
        return self.postgres if dialect == "postgres" else self.duckdb


def _both(*specs: TableSpec) -> dict[str, tuple[str, ...]]:
    return {
        dialect: tuple(stmt for spec in specs for stmt in create_table_sql(spec, dialect))
        for dialect in ("postgres", "duckdb")
    }


_V1 = _both(MARKETS, CANDLESTICKS_RAW, CANDLESTICKS, CANDLESTICKS_REJECTED)
_V2 = _both(TICKS, TRADES, STREAM_EVENTS, CANDLESTICKS_WS)
_V3 = _both(GAME_STATES, GAME_PROBABILITIES)
# kalshi.game_probabilities is derived (recomputed from candles and game states by its asset), so the new
# `source` column and primary key come by recreating it; materialize kalshi/game_probabilities again.
_V4 = {
    dialect: (f"DROP TABLE IF EXISTS {GAME_PROBABILITIES.qualified}", *statements)
    for dialect, statements in _both(GAME_PROBABILITIES).items()
}
#: Columns migration 5 adds to `kalshi.markets` (idempotent: a fresh database already has them).
_V5_MARKET_COLUMNS = ("settlement_bounds_type", "settlement_floor_dollars", "series_categories")
_V5 = {
    dialect: tuple(
        f"ALTER TABLE {MARKETS.qualified} ADD COLUMN IF NOT EXISTS {name} "
        f"{sql_type(MARKETS.column(name).type, dialect)}"
        for name in _V5_MARKET_COLUMNS
    )
    for dialect in ("postgres", "duckdb")
}

#: Candle tables whose secondary indexes migration 6 drops on DuckDB.
_V6_CANDLE_TABLES = (CANDLESTICKS_RAW, CANDLESTICKS, CANDLESTICKS_REJECTED, CANDLESTICKS_WS)
# On DuckDB the candle tables' two secondary (ART) indexes were most of a write's checkpoint: at ~1.2M rows
# per table one of a date's rows took ~330-580 ms with them and ~100 ms without, one of a few rows (a live
# refresh) ~170-250 ms with them and ~20 ms without. Reads do not need them: DuckDB scans by index only
# below ~2k matching rows (never for a date), and the zone maps of rows appended a date at a time prune the
# rest; reads measured as fast or faster without them (a date's raw rows ~25 ms instead of ~50). PostgreSQL
# keeps its B-tree indexes.
_V6 = {
    "postgres": ("SELECT 1",),
    "duckdb": tuple(
        f"DROP INDEX IF EXISTS {SCHEMA}.{index_name(spec, cols)}"
        for spec in _V6_CANDLE_TABLES
        for cols in spec.indexes
    ),
}

#: Candle tables whose `(event_ticker, end_period_ts)` index migration 7 drops on PostgreSQL.
_V7_CANDLE_TABLES = (CANDLESTICKS_RAW, CANDLESTICKS, CANDLESTICKS_REJECTED)
# On PostgreSQL every row a date writes into these tables (~8.5k per date, raw and clean) costs a B-tree insert
# per index. Measured at ~1.2M rows per table, the server's CPU per date and table for the COPY was ~180 ms with
# the primary key and both secondary indexes and ~120-145 ms without this one (the `game_date` index costs
# little: a new date's entries go to its rightmost page). No read needs it: every read of these tables names
# its game dates (a date is ~8.5k rows, found by the `game_date` index), deletes go by ticker (the primary key),
# and without statistics the planner combined it with the `game_date` index in `clean_state`, scanning all of
# it once per date. `candlesticks_ws` keeps it (small stream batches, not measured); DuckDB dropped both
# secondary indexes in migration 6.
_V7 = {
    "postgres": tuple(
        f"DROP INDEX IF EXISTS {SCHEMA}.{index_name(spec, ('event_ticker', 'end_period_ts'))}"
        for spec in _V7_CANDLE_TABLES
    ),
    "duckdb": ("SELECT 1",),
}

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "markets, candlesticks_raw, candlesticks, candlesticks_rejected",
        postgres=_V1["postgres"],
        duckdb=_V1["duckdb"],
    ),
    Migration(
        2,
        "WebSocket stream: ticks, trades, stream_events, candlesticks_ws",
        postgres=_V2["postgres"],
        duckdb=_V2["duckdb"],
    ),
    Migration(
        3,
        "live games: game_states, game_probabilities",
        postgres=_V3["postgres"],
        duckdb=_V3["duckdb"],
    ),
    Migration(
        4,
        "game_probabilities: source column (candles | stream) in the primary key, table recreated",
        postgres=_V4["postgres"],
        duckdb=_V4["duckdb"],
    ),
    Migration(
        5,
        "markets: settlement_bounds_type, settlement_floor_dollars, series_categories",
        postgres=_V5["postgres"],
        duckdb=_V5["duckdb"],
    ),
    Migration(
        6,
        "DuckDB only: the candle tables' secondary indexes dropped (checkpoint cost, unused by reads)",
        postgres=_V6["postgres"],
        duckdb=_V6["duckdb"],
    ),
    Migration(
        7,
        "PostgreSQL only: the REST candle tables' (event_ticker, end_period_ts) index dropped (write cost, "
        "unused by reads)",
        postgres=_V7["postgres"],
        duckdb=_V7["duckdb"],
    ),
)

MIGRATIONS_TABLE = f"{SCHEMA}.schema_migrations"
