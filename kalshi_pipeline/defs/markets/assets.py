"""The `kalshi/markets` asset: every game market of the partition's date(s) in `kalshi.markets`.

The work is `discovery.discover_markets` and `refresh.store_markets`; this module wires the resources,
metadata and check results.
"""

import asyncio
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime

import dagster as dg

from kalshi_pipeline.defs.live.automation import DISCOVERY_CONDITION
from kalshi_pipeline.defs.markets.discovery import Discovery, discover_markets
from kalshi_pipeline.defs.markets.refresh import store_markets
from kalshi_pipeline.defs.partitions import dates_label, game_date_partitions, partition_dates
from kalshi_pipeline.defs.reporting import preview_md, schema_check_result, stats_metadata
from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource
from kalshi_pipeline.kalshi import RequestStats
from kalshi_pipeline.warehouse.schema import MARKETS

# backfill_policy is marked beta in dagster 1.13 but is the documented way to run ranges in one run.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
MARKETS_KEY = dg.AssetKey(["kalshi", "markets"])


@dg.asset(
    key=MARKETS_KEY,
    partitions_def=game_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=DISCOVERY_CONDITION,
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
        dg.AssetCheckSpec(
            "settlement",
            asset=MARKETS_KEY,
            description=(
                "Every settled market's value fits its result: yes 1, no 0, scalar in [0, 1] (exact)."
            ),
        ),
    ],
)
def markets(
    context: dg.AssetExecutionContext, kalshi: KalshiApiResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Discover the partition's games and upsert their markets into `kalshi.markets`."""
    dates = partition_dates(context)
    series = kalshi.series_tickers()

    async def discover() -> tuple[Discovery, RequestStats]:
        async with kalshi.client() as client:
            found = await discover_markets(client, series, dates, now=datetime.now(UTC))
            return found, client.stats

    # The warehouse is opened (and its schema checked) while the listings are fetched.
    with ExitStack() as opened, ThreadPoolExecutor(1, thread_name_prefix="markets-open") as pool:
        opening = pool.submit(opened.enter_context, warehouse.open())
        found, stats = asyncio.run(discover())
        done = store_markets(opening.result(), found, dates)
    found = done.discovery
    context.log.info(
        f"{len(found.events)} games, {len(done.discovered)} markets for {dates_label(dates)} "
        f"({found.historical_lookups} historical lookups)"
    )
    checks = [
        schema_check_result(
            MARKETS_KEY,
            done.stored,
            MARKETS.column_names,
            ["settlement_value_dollars", "last_price_dollars", "volume", "open_interest"],
        ),
        dg.AssetCheckResult(
            asset_key=MARKETS_KEY,
            check_name="markets_per_game",
            passed=not done.team_problems,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "games_ok": len(done.complete_games),
                "problems": "; ".join(done.team_problems[:20]) or "none",
            },
        ),
        dg.AssetCheckResult(
            asset_key=MARKETS_KEY,
            check_name="settlement",
            passed=not done.settlement_problems,
            metadata={
                "scalar_markets": int((done.stored["result"] == "scalar").sum())
                if len(done.stored)
                else 0,
                "problems": "; ".join(done.settlement_problems[:20]) or "none",
            },
        ),
    ]
    return dg.MaterializeResult(
        metadata={
            "dates": dates_label(dates),
            "series": ", ".join(series),
            "games": len(found.events),
            "markets": len(done.discovered),
            "markets_live": done.markets_from("live"),
            "markets_historical": done.markets_from("historical"),
            "historical_cutoff": str(found.cutoff),
            "historical_lookups": found.historical_lookups,
            "window": dates_label(dates),
            **stats_metadata(stats),
            **kalshi.settings_metadata(),
            "preview": preview_md(
                done.discovered,
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
