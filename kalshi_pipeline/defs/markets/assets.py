"""The `kalshi/markets` asset: every game market of the partition's date(s) in `kalshi.markets`."""

import asyncio
import warnings
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import pandas as pd

from kalshi_pipeline.defs.markets.discovery import MARKET_COLUMNS, discover_markets
from kalshi_pipeline.defs.partitions import game_date_partitions, partition_dates
from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource

# backfill_policy is marked beta in dagster 1.13 but is the documented way to run ranges in one run.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
MARKETS_KEY = dg.AssetKey(["kalshi", "markets"])
PREVIEW_ROWS = 10


def preview_md(
    df: pd.DataFrame, columns: Sequence[str], rows: int = PREVIEW_ROWS
) -> dg.MetadataValue:
    """Render the first rows of some columns as a markdown table for the Dagster UI."""
    cols = [c for c in columns if c in df.columns]
    if df.empty or not cols:
        return dg.MetadataValue.md("_no rows_")
    head = df[cols].head(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for record in head.itertuples(index=False):
        cells = ["" if v is None or v is pd.NaT else str(v) for v in record]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if len(df) > rows:
        lines.append(f"\n_{len(df) - rows} more rows_")
    return dg.MetadataValue.md("\n".join(lines))


def stats_metadata(stats: Any) -> dict[str, Any]:
    """Return the client's request counters as metadata (requests, retries, 429s, throttled seconds)."""
    return {
        "api_requests": int(stats.requests),
        "api_retries": int(stats.retries),
        "api_rate_limited": int(stats.rate_limited),
        "api_throttled_seconds": dg.MetadataValue.float(round(float(stats.throttled_seconds), 3)),
    }


def dates_label(dates: Sequence[date]) -> str:
    """Return `2025-12-19` for one date or `2025-12-01..2025-12-31` for a range."""
    return str(dates[0]) if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"


def schema_check_result(
    asset_key: dg.AssetKey, written: pd.DataFrame, expected: Sequence[str], money: Sequence[str]
) -> dg.AssetCheckResult:
    """Check that a frame read back from the warehouse has exactly the expected columns and types.

    Money and count columns must hold `Decimal` (never float); timestamps must be tz-aware UTC.
    """
    problems: list[str] = []
    if list(written.columns) != list(expected):
        problems.append(f"columns {list(written.columns)} != {list(expected)}")
    from decimal import Decimal

    for col in money:
        if col in written.columns:
            bad = [
                v
                for v in written[col].tolist()
                if v is not None and not isinstance(v, Decimal) and not pd.isna(v)
            ]
            if bad:
                problems.append(f"{col} holds {type(bad[0]).__name__}, not Decimal")
    for col in written.columns:
        dtype = written[col].dtype
        if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) not in ("UTC", "utc"):
            problems.append(f"{col} is in {dtype.tz}, not UTC")
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="schema",
        passed=not problems,
        metadata={"rows_checked": len(written), "problems": "; ".join(problems) or "none"},
    )


def with_columns(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Give an empty query result the table's columns (drivers may return none for zero rows)."""
    if df.empty and not set(columns) <= set(df.columns):
        return pd.DataFrame(columns=list(columns))
    return df


def select_markets(
    wh: Any, dates: Sequence[date], event_tickers: Sequence[str] = ()
) -> pd.DataFrame:
    """Read `kalshi.markets` rows of some game dates (optionally only some games) from the warehouse."""
    df = wh.query_df(
        "SELECT * FROM kalshi.markets WHERE game_date >= %(first)s AND game_date <= %(last)s "
        "ORDER BY event_ticker, ticker",
        {"first": min(dates), "last": max(dates)},
    )
    df = with_columns(df, MARKET_COLUMNS)
    if event_tickers:
        wanted = {e.strip().upper() for e in event_tickers}
        df = df[df["event_ticker"].isin(wanted)]
    wanted_dates = set(dates)
    mask = pd.Series([d in wanted_dates for d in df["game_date"]], index=df.index, dtype=bool)
    return df.loc[mask].reset_index(drop=True)


@dg.asset(
    key=MARKETS_KEY,
    partitions_def=game_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="kalshi",
    kinds={"python"},
    description=(
        "Every game market of the partition's date(s) for each configured series: teams, scheduled "
        "start, status, result and settlement, from the live endpoints or /historical per the cutoff."
    ),
    check_specs=[
        dg.AssetCheckSpec("schema", asset=MARKETS_KEY, description="Columns and types as written."),
        dg.AssetCheckSpec(
            "markets_per_game",
            asset=MARKETS_KEY,
            description="Every game has one market for the away team and one for the home team.",
        ),
    ],
)
def markets(
    context: dg.AssetExecutionContext, kalshi: KalshiApiResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Discover the partition's games and upsert their markets into `kalshi.markets`."""
    dates = partition_dates(context)
    series = kalshi.series_tickers()
    now = datetime.now(UTC)

    async def run() -> tuple[Any, Any]:
        async with kalshi.client() as client:
            found = await discover_markets(client, series, dates, now=now)
            return found, client.stats

    found, stats = asyncio.run(run())
    df = found.frame()
    with warehouse.open() as wh:
        with wh.transaction() as tx:
            if len(df):
                tx.upsert("markets", df)
        written = select_markets(wh, dates)
    context.log.info(
        f"{len(found.events)} games, {len(df)} markets for {dates_label(dates)} "
        f"({found.historical_lookups} historical lookups)"
    )

    teams_ok: list[str] = []
    problems: list[str] = []
    for event_ticker, group in written.groupby("event_ticker"):
        away, home = group["away_team"].iloc[0], group["home_team"].iloc[0]
        if {away, home} <= set(group["team"]):
            teams_ok.append(str(event_ticker))
        else:
            problems.append(f"{event_ticker}: teams {sorted(group['team'])}")
    checks = [
        schema_check_result(
            MARKETS_KEY,
            written,
            MARKET_COLUMNS,
            ["settlement_value_dollars", "last_price_dollars", "volume", "open_interest"],
        ),
        dg.AssetCheckResult(
            asset_key=MARKETS_KEY,
            check_name="markets_per_game",
            passed=not problems,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"games_ok": len(teams_ok), "problems": "; ".join(problems[:20]) or "none"},
        ),
    ]
    by_source = df["source"].value_counts().to_dict() if len(df) else {}
    return dg.MaterializeResult(
        metadata={
            "dates": dates_label(dates),
            "series": ", ".join(series),
            "games": len(found.events),
            "markets": len(df),
            "markets_live": int(by_source.get("live", 0)),
            "markets_historical": int(by_source.get("historical", 0)),
            "historical_cutoff": str(found.cutoff),
            "historical_lookups": found.historical_lookups,
            "window": dates_label(dates),
            **stats_metadata(stats),
            "preview": preview_md(
                df,
                [
                    "ticker",
                    "away_team",
                    "home_team",
                    "team",
                    "status",
                    "result",
                    "scheduled_start",
                    "source",
                ],
            ),
        },
        check_results=checks,
    )
