"""The candle assets: `kalshi/candlesticks_raw` (payloads as received) and `kalshi/candlesticks` (validated).

One op computes both (a multi-asset that can be subset): a range run pulls, stores, validates and checks
each date in one step, with no hand-off between steps. The work is `ingest.ingest_raw_candles` and
`clean.clean_candles`; this module wires run config, resources, metadata and check results.
"""

import asyncio
import time
import warnings
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from kalshi_pipeline.defs.candlesticks.clean import CleanCandles, clean_candles
from kalshi_pipeline.defs.candlesticks.ingest import (
    CandleDatesFailed,
    RawIngest,
    ingest_raw_candles,
)
from kalshi_pipeline.defs.candlesticks.pull import MarketWindow
from kalshi_pipeline.defs.live.automation import SWEEP_CONDITION
from kalshi_pipeline.defs.markets.assets import MARKETS_KEY
from kalshi_pipeline.defs.partitions import dates_label, game_date_partitions, partition_dates
from kalshi_pipeline.defs.reporting import (
    PREVIEW_ROWS,
    preview_md,
    schema_check_result,
    stats_metadata,
)
from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource
from kalshi_pipeline.kalshi import RequestStats
from kalshi_pipeline.warehouse import Warehouse
from kalshi_pipeline.warehouse.schema import (
    CANDLE_VALUE_COLUMNS,
    CANDLESTICKS,
    CANDLESTICKS_RAW,
)

# backfill_policy is marked beta in dagster 1.13 but is the documented way to run ranges in one run.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
RAW_KEY = dg.AssetKey(["kalshi", "candlesticks_raw"])
#: Share of live-pulled markets that may fall back to /historical before the check warns.
MAX_FALLBACK_FRACTION = 0.1
#: Missing minutes named in the `minute_grid` metadata at most.
MAX_NAMED_MINUTES = 200
CANDLES_KEY = dg.AssetKey(["kalshi", "candlesticks"])


class CandleConfig(dg.Config):
    """Run config of the candle assets: which games and from when (empty/None = everything), and the
    thresholds of the clean asset's checks."""

    event_tickers: list[str] = Field(
        default=[],
        description="Restrict the run to these games (event tickers); empty = all games.",
    )
    start_ts: int | None = Field(
        default=None,
        description="Incremental window start (Unix s): only candles ending at or after it.",
    )
    max_reject_fraction: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="Rejected share of candles above which the blocking `rejects` check is an ERROR.",
    )
    max_missing_fraction: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of active-window minutes a game may miss before `minute_grid` fails.",
    )


def _window_label(windows: Sequence[MarketWindow]) -> str:
    if not windows:
        return "empty"
    first = min(w.start_ts for w in windows)
    last = max(w.end_ts for w in windows)
    fmt = "%Y-%m-%dT%H:%MZ"
    return (
        f"{time.strftime(fmt, time.gmtime(first))} .. {time.strftime(fmt, time.gmtime(last))} "
        "(per market: open_time .. min(close_time, settlement_ts, now), end_period_ts inclusive)"
    )


#: The op that computes both candle assets (the key of its run config).
CANDLES_OP = "kalshi__candles"


@dg.multi_asset(
    name=CANDLES_OP,
    # Inline: a module-level AssetSpec would be loaded by the defs folder as an asset of its own.
    specs=[
        dg.AssetSpec(
            RAW_KEY,
            deps=[MARKETS_KEY],
            automation_condition=SWEEP_CONDITION,
            group_name="kalshi",
            kinds={"python"},
            description=(
                "Every 1-minute candle of every market of the partition's games over the market's "
                "life, stored exactly as Kalshi sent it (batch endpoint for live markets, /historical "
                "for archived ones)."
            ),
        ),
        dg.AssetSpec(
            CANDLES_KEY,
            deps=[RAW_KEY],
            automation_condition=SWEEP_CONDITION,
            group_name="kalshi",
            kinds={"python", "pandera"},
            description=(
                "Validated 1-minute candles (exact decimals) of the partition's games; rows failing "
                "the pandera rules go to kalshi.candlesticks_rejected with their reasons, in the same "
                "transaction."
            ),
        ),
    ],
    partitions_def=game_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=True,
    check_specs=[
        dg.AssetCheckSpec("schema", asset=RAW_KEY, description="Columns and types as written."),
        dg.AssetCheckSpec(
            "historical_fallbacks",
            asset=RAW_KEY,
            description=(
                "Share of live markets that came back empty and were looked up under /historical: "
                f"WARN above {MAX_FALLBACK_FRACTION:.0%} (a mass fallback means the live answers were "
                "wrong, not that the markets were archived)."
            ),
        ),
        dg.AssetCheckSpec("schema", asset=CANDLES_KEY, description="Columns and types as written."),
        dg.AssetCheckSpec(
            "rejects",
            asset=CANDLES_KEY,
            blocking=True,
            description="Share of rejected candles: ERROR above max_reject_fraction, WARN below.",
        ),
        dg.AssetCheckSpec(
            "minute_grid",
            asset=CANDLES_KEY,
            description=(
                "Per game: no missing minutes inside the active trading window (scheduled start to "
                "close); no-trade and quiet minutes are fine, and a live game's newest minutes are "
                "still settling. Each missing minute is named (ticker, minute)."
            ),
        ),
        dg.AssetCheckSpec(
            "raw_clean_agree",
            asset=CANDLES_KEY,
            description=(
                "Per game: every row of kalshi.candlesticks_raw is either in kalshi.candlesticks or "
                "in kalshi.candlesticks_rejected (stream rows aside)."
            ),
        ),
    ],
)
def candle_assets(
    context: dg.AssetExecutionContext,
    config: CandleConfig,
    kalshi: KalshiApiResource,
    warehouse: WarehouseResource,
) -> Iterator[dg.MaterializeResult]:
    """Pull the partition's games' candles into `kalshi.candlesticks_raw` and validate them into
    `kalshi.candlesticks`, in one step.

    With both assets selected, each date is validated in the transaction that stores it and its checks'
    read-backs are done right after, while the next dates are pulled; the clean asset then only reports.
    Either asset alone does its own half: the raw one pulls and stores, the clean one validates what the
    raw table holds.
    """
    dates = partition_dates(context)
    # One time for the run: it bounds open markets' windows, stamps `ingested_at` and settles the checks.
    now = datetime.now(UTC)
    selected = context.selected_asset_keys
    checks = context.selected_asset_check_keys
    with warehouse.open() as wh, wh.hold():
        pulled: tuple[RawIngest, RequestStats] | None = None
        if RAW_KEY in selected:
            pulled = _pull(
                context, config, kalshi, wh, dates, now, validate=CANDLES_KEY in selected
            )
        if CANDLES_KEY not in selected:
            if pulled is not None:
                yield _raw_result(pulled, config, kalshi, dates, checks)
            return
        # The clean half's last read-backs run while Dagster records the raw asset's materializations,
        # and an embedded file's checkpoint while it records the clean asset's (the rows are committed).
        with ThreadPoolExecutor(1, thread_name_prefix="candles-clean") as pool:
            cleaning = pool.submit(
                clean_candles,
                wh,
                dates,
                now=now,
                event_tickers=config.event_tickers,
                start_ts=config.start_ts,
                preview_rows=PREVIEW_ROWS,
                along=pulled[0].along if pulled is not None else None,
            )
            if pulled is not None:
                yield _raw_result(pulled, config, kalshi, dates, checks)
            done = cleaning.result()
            checkpointing = pool.submit(wh.checkpoint)
            context.log.info(
                f"{done.valid} valid, {done.rejected} rejected candles for {dates_label(dates)}"
            )
            yield _clean_result(done, config, dates, checks)
            checkpointing.result()


def _pull(
    context: dg.AssetExecutionContext,
    config: CandleConfig,
    kalshi: KalshiApiResource,
    wh: Warehouse,
    dates: Sequence[date],
    now: datetime,
    *,
    validate: bool,
) -> tuple[RawIngest, RequestStats]:
    """Pull and store the dates' candles (`ingest_raw_candles`); a partly failed range raises `dg.Failure`."""

    async def run() -> tuple[RawIngest, RequestStats]:
        async with kalshi.client() as client:
            done = await ingest_raw_candles(
                wh,
                client,
                dates,
                now=now,
                event_tickers=config.event_tickers,
                start_ts=config.start_ts,
                preview_rows=PREVIEW_ROWS,
                validate=validate,
            )
            return done, client.stats

    try:
        done, stats = asyncio.run(run())
    except CandleDatesFailed as failed:
        raise _partial_failure(context, failed) from failed
    context.log.info(f"{done.candles} raw candles for {done.games} games of {dates_label(dates)}")
    return done, stats


def _raw_result(
    pulled: tuple[RawIngest, RequestStats],
    config: CandleConfig,
    kalshi: KalshiApiResource,
    dates: Sequence[date],
    checks: AbstractSet[dg.AssetCheckKey],
) -> dg.MaterializeResult:
    done, stats = pulled
    return dg.MaterializeResult(
        asset_key=RAW_KEY,
        metadata={
            "dates": dates_label(dates),
            "games": done.games,
            "markets": done.markets,
            "markets_archived": done.archived_markets,
            "candles": done.candles,
            "candles_historical": done.historical_candles,
            "historical_fallbacks": len(done.historical_fallbacks),
            "dates_validated_along": len(done.along.days) if done.along is not None else 0,
            "window": _window_label(done.pulled_windows),
            "start_ts": config.start_ts if config.start_ts is not None else "open_time",
            **stats_metadata(stats),
            **kalshi.settings_metadata(),
            "preview": preview_md(done.preview, ["ticker", "end_period_ts", "source", "payload"]),
        },
        check_results=_selected(
            checks,
            [
                schema_check_result(RAW_KEY, done.sample, CANDLESTICKS_RAW.column_names, []),
                _fallback_check(done),
            ],
        ),
    )


def _selected(
    checks: AbstractSet[dg.AssetCheckKey], results: list[dg.AssetCheckResult]
) -> list[dg.AssetCheckResult]:
    """The results of the checks the run selected (a run may select an asset without its checks)."""
    return [
        r
        for r in results
        if r.asset_key is not None
        and r.check_name is not None
        and dg.AssetCheckKey(r.asset_key, r.check_name) in checks
    ]


def _partial_failure(context: dg.AssetExecutionContext, failed: CandleDatesFailed) -> dg.Failure:
    """Keep what a partly failed range run committed usable, and return the failure naming the rest.

    Dates commit one by one, so the committed ones are recorded as materialized: Dagster then shows only
    the failed dates as failed, and "materialize failed and missing" (or a backfill's re-run of failed
    partitions) does only those. When the run also selects `kalshi/candlesticks`, each committed date was
    validated into the clean tables in the transaction that stored it, so it is recorded as materialized
    there too and a re-run of the failed dates alone leaves every date complete.
    """
    committed = sorted(failed.committed)
    for day in committed:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=RAW_KEY,
                partition=str(day),
                description="Committed by a range run in which other game dates failed.",
                metadata={"failed_dates_in_run": len(failed.failures)},
            )
        )
    for day in committed:
        validated = failed.validated.get(day)
        if validated is None:
            continue
        context.log_event(
            dg.AssetMaterialization(
                asset_key=CANDLES_KEY,
                partition=str(day),
                description=(
                    "Validated as it was stored by a range run in which other game dates failed (the "
                    "checks run with the next materialization of this asset)."
                ),
                metadata={"candles": validated.valid, "rejects": validated.rejected},
            )
        )
    return dg.Failure(
        description=str(failed),
        metadata={
            "failed_dates": ", ".join(str(d) for d in failed.failures),
            "committed_dates": ", ".join(str(d) for d in committed) or "none",
        },
        allow_retries=False,
    )


def _fallback_check(done: RawIngest) -> dg.AssetCheckResult:
    """`historical_fallbacks`: WARN when more than `MAX_FALLBACK_FRACTION` of live markets fell back."""
    live = sum(1 for w in done.pulled_windows if not w.archived)
    fell_back = len(done.historical_fallbacks)
    fraction = fell_back / live if live else 0.0
    return dg.AssetCheckResult(
        asset_key=RAW_KEY,
        check_name="historical_fallbacks",
        passed=fraction <= MAX_FALLBACK_FRACTION,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "live_markets": live,
            "historical_fallbacks": fell_back,
            "fallback_fraction": dg.MetadataValue.float(round(fraction, 6)),
            "max_fallback_fraction": dg.MetadataValue.float(MAX_FALLBACK_FRACTION),
            "markets": ", ".join(done.historical_fallbacks[:20]) or "none",
        },
    )


def _clean_result(
    done: CleanCandles,
    config: CandleConfig,
    dates: Sequence[date],
    checks: AbstractSet[dg.AssetCheckKey],
) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        asset_key=CANDLES_KEY,
        metadata={
            "dates": dates_label(dates),
            "games": done.games,
            "markets": done.markets,
            "candles": done.valid,
            "rejects": done.rejected,
            "raw_rows": done.raw,
            "api_requests": 0,
            "api_retries": 0,
            "window": _clean_window_label(done),
            "preview": preview_md(
                done.preview.assign(
                    end_period_ts=pd.to_datetime(done.preview["end_period_ts"], unit="s", utc=True)
                )
                if len(done.preview)
                else done.preview,
                [
                    "ticker",
                    "end_period_ts",
                    "price_close",
                    "yes_bid_close",
                    "yes_ask_close",
                    "volume",
                ],
            ),
        },
        check_results=_selected(
            checks,
            [
                schema_check_result(
                    CANDLES_KEY, done.sample, CANDLESTICKS.column_names, CANDLE_VALUE_COLUMNS
                ),
                _rejects_check(done, config.max_reject_fraction),
                _grid_check(done, config.max_missing_fraction),
                _agreement_check(done),
            ],
        ),
    )


def _clean_window_label(done: CleanCandles) -> str:
    """The candle end times a clean run replaced, as UTC times."""
    if done.window_end is None:
        return "empty"
    fmt = "%Y-%m-%dT%H:%MZ"
    start = (
        time.strftime(fmt, time.gmtime(done.window_start))
        if done.window_start
        else "each market's open"
    )
    return (
        f"{start} .. {time.strftime(fmt, time.gmtime(done.window_end))} (end_period_ts inclusive)"
    )


def _agreement_check(done: CleanCandles) -> dg.AssetCheckResult:
    """`raw_clean_agree`: each game's raw rows equal its clean plus rejected rows."""
    bad = done.disagreeing_games
    table = ["| game | raw | clean | rejected |", "|---|---|---|---|"]
    table += [
        f"| {r.event_ticker} | {r.raw} | {r.candles} | {r.rejected} |"
        for r in bad.head(50).itertuples(index=False)
    ]
    return dg.AssetCheckResult(
        asset_key=CANDLES_KEY,
        check_name="raw_clean_agree",
        passed=bad.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "games": len(done.agreement),
            "games_disagreeing": len(bad),
            "raw_rows": int(done.agreement["raw"].sum()),
            "clean_rows": int(done.agreement["candles"].sum()),
            "rejected_rows": int(done.agreement["rejected"].sum()),
            "disagreeing": dg.MetadataValue.md("\n".join(table) if len(bad) else "none"),
        },
    )


def _rejects_check(done: CleanCandles, max_reject_fraction: float) -> dg.AssetCheckResult:
    """`rejects`: passes with no reject; ERROR above `max_reject_fraction`, else a WARN."""
    fraction = done.reject_fraction
    return dg.AssetCheckResult(
        asset_key=CANDLES_KEY,
        check_name="rejects",
        passed=done.rejected == 0,
        severity=dg.AssetCheckSeverity.ERROR
        if fraction > max_reject_fraction
        else dg.AssetCheckSeverity.WARN,
        metadata={
            "rejects": done.rejected,
            "candles": done.valid + done.rejected,
            "reject_fraction": dg.MetadataValue.float(round(fraction, 6)),
            "max_reject_fraction": dg.MetadataValue.float(max_reject_fraction),
            "top_reasons": dg.MetadataValue.json(
                {str(k): int(v) for k, v in done.top_reasons().items()}
            ),
        },
    )


def _grid_check(done: CleanCandles, max_missing_fraction: float) -> dg.AssetCheckResult:
    """`minute_grid`: every covered game misses at most `max_missing_fraction` of its active minutes."""
    games = done.completeness
    failing = [g for g in games if g.missing_fraction > max_missing_fraction]
    grid_md = [
        "| game | active | candles | traded | no-trade | missing |",
        "|---|---|---|---|---|---|",
    ]
    grid_md += [
        f"| {g.event_ticker} | {g.active_minutes} | {g.candle_minutes} | {g.traded_minutes} | "
        f"{g.no_trade_minutes} | {g.missing_minutes} |"
        for g in games[:50]
    ]
    named = [(g.event_ticker, t, m) for g in games for t, m in g.missing]
    fmt = "%Y-%m-%dT%H:%MZ"
    missing_md = ["| ticker | minute (end_period_ts, UTC) |", "|---|---|"]
    missing_md += [
        f"| {t} | {time.strftime(fmt, time.gmtime(m))} |" for _, t, m in named[:MAX_NAMED_MINUTES]
    ]
    if len(named) > MAX_NAMED_MINUTES:
        missing_md.append(f"\n_{len(named) - MAX_NAMED_MINUTES} more missing minutes_")
    return dg.AssetCheckResult(
        asset_key=CANDLES_KEY,
        check_name="minute_grid",
        passed=not failing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "games": len(games),
            "games_incomplete": len(failing),
            "active_minutes": sum(g.active_minutes for g in games),
            "missing_minutes": sum(g.missing_minutes for g in games),
            "no_trade_minutes": sum(g.no_trade_minutes for g in games),
            "incomplete": ", ".join(g.event_ticker for g in failing[:20]) or "none",
            "per_game": dg.MetadataValue.md("\n".join(grid_md)),
            "missing": dg.MetadataValue.md("\n".join(missing_md) if named else "none"),
        },
    )
