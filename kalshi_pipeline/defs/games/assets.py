"""The `kalshi/game_states` and `kalshi/game_probabilities` assets: what the users' product reads.

The work is `states.observe_games` and `probabilities.build_game_probabilities`; this module wires the
resources, the checks and the metadata (each game's chart embedded as markdown, so the Dagster UI shows it).
"""

import asyncio
import warnings
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from kalshi_pipeline.defs.candlesticks.assets import CANDLES_KEY
from kalshi_pipeline.defs.games.calibration import calibrate
from kalshi_pipeline.defs.games.chart import chart_markdown, game_chart_png
from kalshi_pipeline.defs.games.checks import (
    SETTLED_MIN_PROBABILITY,
    missing_state_fields,
    probability_problems,
    settlement_problems,
)
from kalshi_pipeline.defs.games.probabilities import GameProbabilities, build_game_probabilities
from kalshi_pipeline.defs.games.states import GameStates, observe_games
from kalshi_pipeline.defs.markets.assets import MARKETS_KEY
from kalshi_pipeline.defs.partitions import dates_label, game_date_partitions, partition_dates
from kalshi_pipeline.defs.reporting import preview_md, stats_metadata
from kalshi_pipeline.defs.resources import KalshiApiResource, LiveResource, WarehouseResource
from kalshi_pipeline.kalshi import RequestStats
from kalshi_pipeline.warehouse import Warehouse

warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
GAME_STATES_KEY = dg.AssetKey(["kalshi", "game_states"])
GAME_PROBABILITIES_KEY = dg.AssetKey(["kalshi", "game_probabilities"])
#: Games whose chart one materialization embeds (the rest are in the table and `kalshi-pipeline chart`).
MAX_CHARTS = 16


class GameStatesConfig(dg.Config):
    """Run config of `kalshi/game_states`: which games, and whether to replay their play-by-play."""

    event_tickers: list[str] = Field(
        default=[],
        description=(
            "Poll only these games (a live refresh polls its live games, reusing stored milestone ids); "
            "empty = every game of the partition."
        ),
    )
    replay_pbp: bool = Field(
        default=True,
        description="Also replay started games' play-by-play (GET .../game_stats) as observations.",
    )


class GameProbabilitiesConfig(dg.Config):
    """Run config of `kalshi/game_probabilities`: which games to recompute."""

    event_tickers: list[str] = Field(
        default=[], description="Recompute only these games; empty = every game of the partition."
    )


@dg.asset(
    key=GAME_STATES_KEY,
    deps=[MARKETS_KEY],
    partitions_def=game_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="kalshi",
    kinds={"python"},
    description=(
        "One row per game per observation: status, period, clock and points from Kalshi's live data "
        "(GET /live_data/batch), with the raw details kept; started games replay their play-by-play."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "details_keys",
            asset=GAME_STATES_KEY,
            description="The live data carried every game-state field (status, points, period, clock).",
        ),
        dg.AssetCheckSpec(
            "live_data_found",
            asset=GAME_STATES_KEY,
            description="Every game has a milestone and the milestone has live data.",
        ),
    ],
)
def game_states(
    context: dg.AssetExecutionContext,
    config: GameStatesConfig,
    kalshi: KalshiApiResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Poll the live data of the partition's games (or of the configured ones) once and store it."""
    dates = partition_dates(context)
    scope = config.event_tickers or None

    async def run(wh: Warehouse) -> tuple[GameStates, RequestStats]:
        async with kalshi.client() as client:
            done = await observe_games(
                wh,
                client,
                dates,
                now=datetime.now(UTC),
                replay_pbp=config.replay_pbp,
                event_tickers=scope,
            )
            return done, client.stats

    with warehouse.open() as wh:
        done, stats = asyncio.run(run(wh))
    context.log.info(
        f"{done.games} games, {done.live_rows} live observations, {done.pbp_rows} replayed plays"
    )
    missing = missing_state_fields(done.missing_fields, done.live_rows)
    checks = [
        dg.AssetCheckResult(
            asset_key=GAME_STATES_KEY,
            check_name="details_keys",
            passed=missing == "none",
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "missing": missing,
                "observations": done.live_rows,
                "note": "absent keys leave NULL columns; the raw details are stored as sent",
            },
        ),
        dg.AssetCheckResult(
            asset_key=GAME_STATES_KEY,
            check_name="live_data_found",
            passed=not done.without_milestone and not done.without_live_data,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "games": done.games,
                "without_milestone": ", ".join(done.without_milestone[:20]) or "none",
                "without_live_data": ", ".join(done.without_live_data[:20]) or "none",
            },
        ),
    ]
    return dg.MaterializeResult(
        metadata={
            "dates": dates_label(dates),
            "games": done.games,
            "live_observations": done.live_rows,
            "replayed_plays": done.pbp_rows,
            "plays_without_time_or_score": done.pbp_skipped,
            "observed_at": done.observed_at.isoformat(),
            **stats_metadata(stats),
            "preview": preview_md(
                done.rows[done.rows["source"] == "live_data"],
                [
                    "event_ticker",
                    "status",
                    "period",
                    "clock",
                    "home_points",
                    "away_points",
                    "winner",
                ],
            ),
        },
        check_results=checks,
    )


@dg.asset(
    key=GAME_PROBABILITIES_KEY,
    deps=[CANDLES_KEY, GAME_STATES_KEY],
    partitions_def=game_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="kalshi",
    kinds={"python"},
    description=(
        "One row per market per minute: the mid (spread within KALSHI_PROBABILITY_MAX_SPREAD) or last "
        "trade, normalized per game to sum to exactly 1 with the overround kept, the quote age and the "
        "game state at that minute. Each game's chart is in the materialization's metadata."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "probabilities_sum_to_one",
            asset=GAME_PROBABILITIES_KEY,
            blocking=True,
            description="Every probability is in [0, 1]; each priced game-minute sums to exactly 1.",
        ),
        dg.AssetCheckSpec(
            "settled_games_end_at_result",
            asset=GAME_PROBABILITIES_KEY,
            description=(
                f"A settled game's last priced minute gives the winner at least {SETTLED_MIN_PROBABILITY}."
            ),
        ),
    ],
)
def game_probabilities(
    context: dg.AssetExecutionContext,
    config: GameProbabilitiesConfig,
    live: LiveResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Recompute the partition's per-minute win probabilities from the stored candles and game states."""
    dates = partition_dates(context)
    with warehouse.open() as wh:
        done = build_game_probabilities(
            wh,
            dates,
            max_spread=live.max_spread(),
            now=datetime.now(UTC),
            event_tickers=config.event_tickers or None,
        )
    rows = done.rows
    context.log.info(f"{len(rows)} probability rows for {done.games} games of {dates_label(dates)}")
    bad = probability_problems(rows)
    unsettled, checked = settlement_problems(rows, done.markets)
    checks = [
        dg.AssetCheckResult(
            asset_key=GAME_PROBABILITIES_KEY,
            check_name="probabilities_sum_to_one",
            passed=not bad,
            metadata={"problems": "; ".join(bad[:10]) or "none", "rows": len(rows)},
        ),
        dg.AssetCheckResult(
            asset_key=GAME_PROBABILITIES_KEY,
            check_name="settled_games_end_at_result",
            passed=not unsettled,
            metadata={"settled_games": checked, "problems": "; ".join(unsettled[:10]) or "none"},
        ),
    ]
    return dg.MaterializeResult(
        metadata={
            "dates": dates_label(dates),
            "games": done.games,
            "rows": len(rows),
            "priced_rows": int(rows["probability"].notna().sum()),
            "methods": ", ".join(f"{k}: {v}" for k, v in rows["method"].value_counts().items())
            or "none",
            "max_spread": str(live.max_spread()),
            "charts": dg.MetadataValue.md(_charts(done) or "no priced games"),
            "preview": preview_md(
                _latest(rows),
                ["event_ticker", "team", "minute_ts", "probability", "method", "status", "period"],
            ),
        },
        check_results=checks,
    )


def _charts(done: GameProbabilities) -> str:
    """Markdown embedding the chart of each game that has started (up to `MAX_CHARTS`)."""
    states = done.states
    started = set(states[states["status"].notna() & (states["status"] != "none")]["event_ticker"])
    events = sorted(set(done.rows["event_ticker"]) & started)[:MAX_CHARTS]
    return chart_markdown(
        {e: game_chart_png(e, done.rows, done.states, done.markets) for e in events}
    )


def _latest(rows: pd.DataFrame) -> pd.DataFrame:
    """Each market's newest row."""
    if rows.empty:
        return rows
    return rows.sort_values("minute_ts").groupby("ticker").tail(1).sort_values("event_ticker")


CALIBRATION_KEY = dg.AssetKey(["kalshi", "calibration"])


@dg.asset(
    key=CALIBRATION_KEY,
    deps=[GAME_PROBABILITIES_KEY],
    group_name="kalshi",
    kinds={"python"},
    description=(
        "Per season: Brier score and log loss of kalshi.game_probabilities against settled results at "
        "tip-off, at each quarter's end and over every minute, with a reliability diagram."
    ),
)
def calibration(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Score the stored probabilities of every settled game, per season."""
    with warehouse.open() as wh:
        done = calibrate(wh)
    table = done.scores.assign(
        brier=done.scores["brier"].round(4), log_loss=done.scores["log_loss"].round(4)
    )
    overall = done.scores[done.scores["moment"] == "overall"]
    return dg.MaterializeResult(
        metadata={
            "games": done.games,
            "seasons": ", ".join(done.diagrams) or "none",
            "brier_overall": dg.MetadataValue.float(
                round(float(overall["brier"].mean()), 6) if len(overall) else float("nan")
            ),
            "scores": dg.MetadataValue.md(table.to_markdown(index=False) if len(table) else "none"),
            "reliability": dg.MetadataValue.md(chart_markdown(done.diagrams) or "no settled games"),
        },
    )
