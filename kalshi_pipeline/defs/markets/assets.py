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
from kalshi_pipeline.defs.reporting import (
    dates_label,
    preview_md,
    schema_check_result,
    stats_metadata,
    with_columns,
)
from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource

# backfill_policy is marked beta in dagster 1.13 but is the documented way to run ranges in one run.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
MARKETS_KEY = dg.AssetKey(["kalshi", "markets"])


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
