"""The candle assets: `kalshi/candlesticks_raw` (payloads as received) and `kalshi/candlesticks` (validated)."""

import asyncio
import json
import time
import warnings
from collections.abc import Sequence
from datetime import date
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from kalshi_pipeline.defs.candlesticks.completeness import game_completeness
from kalshi_pipeline.defs.candlesticks.pull import (
    PERIOD_INTERVAL,
    RAW_COLUMNS,
    MarketWindow,
    market_window,
    pull_games,
    raw_frame,
)
from kalshi_pipeline.defs.candlesticks.validation import (
    CANDLE_COLUMNS,
    COUNT_COLUMNS,
    PRICE_COLUMNS,
    REJECTED_COLUMNS,
    to_table,
    validate_candles,
)
from kalshi_pipeline.defs.markets.assets import MARKETS_KEY, select_markets
from kalshi_pipeline.defs.partitions import game_date_partitions, partition_dates
from kalshi_pipeline.defs.reporting import (
    PREVIEW_ROWS,
    dates_label,
    preview_md,
    schema_check_result,
    stats_metadata,
    with_columns,
)
from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource
from kalshi_pipeline.kalshi.errors import KalshiError
from kalshi_pipeline.kalshi.candles import CANDLE_VALUE_FIELDS, parse_candle_values

# backfill_policy is marked beta in dagster 1.13 but is the documented way to run ranges in one run.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
RAW_KEY = dg.AssetKey(["kalshi", "candlesticks_raw"])
CANDLES_KEY = dg.AssetKey(["kalshi", "candlesticks"])
SCHEMA_SAMPLE_ROWS = 2000
DATES_PER_CHUNK = 3
#: The `kalshi.candlesticks` columns the minute-grid check reads back.
GRID_COLUMNS = ["ticker", "event_ticker", "period_interval", "end_period_ts", "price_close"]


class CandlePullConfig(dg.Config):
    """Run config of the candle assets: which games and from when (empty/None = everything)."""

    event_tickers: list[str] = Field(
        default=[],
        description="Restrict the run to these games (event tickers); empty = all games.",
    )
    start_ts: int | None = Field(
        default=None,
        description="Incremental window start (Unix s): only candles ending at or after it.",
    )


class CandleValidationConfig(CandlePullConfig):
    """Run config of `kalshi/candlesticks`: the pull scope plus the check thresholds."""

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


def _scoped_markets(
    wh: Any, dates: Sequence[date], event_tickers: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (all markets of the dates, markets of the requested games) with a clear error for strangers."""
    everything = select_markets(wh, dates)
    if not event_tickers:
        return everything, everything
    wanted = {e.strip().upper() for e in event_tickers if e.strip()}
    unknown = sorted(wanted - set(everything["event_ticker"]))
    if unknown:
        raise ValueError(
            f"event_tickers {unknown} are not games of {dates_label(list(dates))} in kalshi.markets; "
            "materialize kalshi/markets for that date first or fix the tickers"
        )
    return everything, everything[everything["event_ticker"].isin(wanted)].reset_index(drop=True)


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


@dg.asset(
    key=RAW_KEY,
    deps=[MARKETS_KEY],
    partitions_def=game_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="kalshi",
    kinds={"python"},
    description=(
        "Every 1-minute candle of every market of the partition's games over the market's life, stored "
        "exactly as Kalshi sent it (batch endpoint for live markets, /historical for archived ones)."
    ),
    check_specs=[
        dg.AssetCheckSpec("schema", asset=RAW_KEY, description="Columns and types as written.")
    ],
)
def candlesticks_raw(
    context: dg.AssetExecutionContext,
    config: CandlePullConfig,
    kalshi: KalshiApiResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Pull the partition's games' candles and replace their windows in `kalshi.candlesticks_raw`."""
    dates = partition_dates(context)
    with warehouse.open() as wh:
        _, scoped = _scoped_markets(wh, dates, config.event_tickers)
    now_ts = int(time.time())
    ingested_at = pd.Timestamp(now_ts, unit="s", tz="UTC")
    totals = {"candles": 0, "historical": 0}
    fallbacks: list[str] = []
    windows: list[MarketWindow] = []
    preview = pd.DataFrame(columns=RAW_COLUMNS)

    def write_date(wh: Any, day_windows: list[MarketWindow], df: pd.DataFrame) -> None:
        # One transaction per game date: a failure leaves that date's previous rows in place.
        spans: dict[tuple[int, int], list[str]] = {}
        for w in day_windows:
            if not w.empty:
                spans.setdefault((w.start_ts, w.end_ts), []).append(w.ticker)
        with wh.transaction() as tx:
            for (start, end), tickers in sorted(spans.items()):
                tx.delete_candles("candlesticks_raw", tickers, start, end, PERIOD_INTERVAL)
            if len(df):
                tx.upsert("candlesticks_raw", df)

    def store(wh: Any, chunk: set[date], pulls: list[Any]) -> None:
        """Build the chunk's raw rows and write them date by date (in a worker thread)."""
        nonlocal preview
        df = raw_frame(pulls, ingested_at)
        pulls.clear()  # the parsed candles are no longer needed while the rows are written
        for day in sorted(chunk):
            day_df = df.loc[df["game_date"].map(lambda d, day=day: d == day).astype(bool)]
            write_date(wh, [w for w in windows if w.game_date == day], day_df)
        totals["candles"] += len(df)
        totals["historical"] += int((df["source"] == "historical").sum())
        if preview.empty and len(df):
            preview = df.head(PREVIEW_ROWS)

    async def run(wh: Any) -> Any:
        async with kalshi.client() as client:
            cutoff = (await client.get_historical_cutoff()).market_settled_unix
            windows.extend(
                market_window(m, now_ts=now_ts, cutoff_ts=cutoff, start_ts=config.start_ts)
                for m in scoped.to_dict("records")
            )
            # Dates are pulled a few at a time (games concurrently) and written as they arrive, which
            # bounds memory on a season-long single-run backfill. A chunk is stored in a worker thread
            # while the next one is pulled (the pull mostly waits on the rate limit); writes stay one
            # at a time and in date order, and a failed write stops the run before the next write.
            storing: asyncio.Future[None] | None = None
            try:
                for i in range(0, len(dates), DATES_PER_CHUNK):
                    chunk = set(dates[i : i + DATES_PER_CHUNK])
                    by_game: dict[str, list[MarketWindow]] = {}
                    for w in windows:
                        if w.game_date in chunk:
                            by_game.setdefault(w.event_ticker, []).append(w)
                    pulls = await pull_games(client, by_game)
                    fallbacks.extend(t for p in pulls for t in p.fell_back_to_historical)
                    if storing is not None:
                        await storing
                    storing = asyncio.ensure_future(asyncio.to_thread(store, wh, chunk, pulls))
                    del pulls
                if storing is not None:
                    await storing
            finally:
                if storing is not None and not storing.done():
                    # Never leave a write running behind an error: wait for it, keep the first error.
                    await asyncio.wait([storing])
            return client.stats

    with warehouse.open() as wh:
        stats = asyncio.run(run(wh))
        sample = wh.query_df(
            "SELECT * FROM kalshi.candlesticks_raw WHERE game_date >= %(first)s "
            f"AND game_date <= %(last)s LIMIT {SCHEMA_SAMPLE_ROWS}",
            {"first": dates[0], "last": dates[-1]},
        )
    context.log.info(
        f"{totals['candles']} raw candles for {scoped['event_ticker'].nunique()} games of {dates_label(dates)}"
    )
    return dg.MaterializeResult(
        metadata={
            "dates": dates_label(dates),
            "games": int(scoped["event_ticker"].nunique()),
            "markets": len(scoped),
            "markets_archived": sum(w.archived for w in windows),
            "candles": totals["candles"],
            "candles_historical": totals["historical"],
            "historical_fallbacks": len(fallbacks),
            "window": _window_label([w for w in windows if not w.empty]),
            "start_ts": config.start_ts if config.start_ts is not None else "open_time",
            **stats_metadata(stats),
            "preview": preview_md(preview, ["ticker", "end_period_ts", "source", "payload"]),
        },
        check_results=[schema_check_result(RAW_KEY, sample, RAW_COLUMNS, [])],
    )


def _epoch_seconds(series: pd.Series) -> list[int]:
    """Unix seconds of `end_period_ts` values as read back (tz-aware timestamps), one per row."""
    if len(series) and isinstance(series.dtype, pd.DatetimeTZDtype) and not series.isna().any():
        ns = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        ns = ns.astype(np.int64)
        if not (ns % 1_000_000_000).any():
            return (ns // 1_000_000_000).tolist()  # whole seconds: exact, as Timestamp.timestamp()
    return [int(pd.Timestamp(v).timestamp()) for v in series.tolist()]


def parse_raw(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse raw payloads once each (`parse_candle_values`, the parser behind `Candlestick.from_payload`).

    Returns (parsed, unparseable): parsed candles with their payload, and the rows whose payload could not
    be parsed as rejects with the reason. Columns are built whole, never row by row.
    """
    cols = [c for c in CANDLE_COLUMNS if c != "ingested_at"] + ["payload"]
    tickers = raw["ticker"].tolist()
    payloads = raw["payload"].tolist()
    sources = raw["source"].tolist()
    intervals = [int(v) for v in raw["period_interval"].tolist()]
    ends = _epoch_seconds(raw["end_period_ts"])
    good: list[int] = []
    values: list[tuple[Any, ...]] = []
    bad: list[int] = []
    bad_reasons: list[str] = []
    for i, (ticker, payload, source) in enumerate(zip(tickers, payloads, sources, strict=True)):
        try:
            _, parsed = parse_candle_values(
                json.loads(payload), ticker=ticker, historical=source == "historical"
            )
        except (ValueError, TypeError, KalshiError) as exc:
            bad.append(i)
            bad_reasons.append(f"unparseable payload: {exc}")
            continue
        good.append(i)
        values.append(parsed)

    def base(rows: list[int]) -> dict[str, list[Any]]:
        if len(rows) == len(raw):
            pick: Any = list
        else:
            pick = lambda column: [column[i] for i in rows]  # noqa: E731
        return {
            "ticker": pick(tickers),
            "event_ticker": pick(raw["event_ticker"].tolist()),
            "series_ticker": pick(raw["series_ticker"].tolist()),
            "game_date": pick(raw["game_date"].tolist()),
            "period_interval": pick(intervals),
            "end_period_ts": pick(ends),
            "source": pick(sources),
            "payload": pick(payloads),
        }

    parsed_columns = base(good)
    by_field = list(zip(*values, strict=True)) if values else [()] * len(CANDLE_VALUE_FIELDS)
    for name, column in zip(CANDLE_VALUE_FIELDS, by_field, strict=True):
        parsed_columns[name] = list(column)
    broken_columns = base(bad)
    for name in CANDLE_VALUE_FIELDS:
        broken_columns[name] = [None] * len(bad)
    broken_columns["reasons"] = bad_reasons
    return (
        pd.DataFrame(parsed_columns, columns=cols) if good else pd.DataFrame([], columns=cols),
        pd.DataFrame(broken_columns, columns=[*cols, "reasons"])
        if bad
        else pd.DataFrame([], columns=[*cols, "reasons"]),
    )


@dg.asset(
    key=CANDLES_KEY,
    deps=[RAW_KEY],
    partitions_def=game_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="kalshi",
    kinds={"python", "pandera"},
    description=(
        "Validated 1-minute candles (exact decimals) of the partition's games; rows failing the pandera "
        "rules go to kalshi.candlesticks_rejected with their reasons, in the same transaction."
    ),
    check_specs=[
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
                "close); no-trade and quiet minutes are fine."
            ),
        ),
    ],
)
def candlesticks(
    context: dg.AssetExecutionContext,
    config: CandleValidationConfig,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Parse and validate the partition's raw candles, then replace them in the clean and rejected tables."""
    dates = partition_dates(context)
    now_ts = int(time.time())
    ingested_at = pd.Timestamp(now_ts, unit="s", tz="UTC")
    window_start = config.start_ts if config.start_ts is not None else 0
    counts = {"valid": 0, "rejected": 0, "raw": 0}
    window_end: int | None = None
    reason_counts: dict[str, int] = {}
    games = []
    preview = pd.DataFrame()
    sample = pd.DataFrame(columns=CANDLE_COLUMNS)
    with warehouse.open() as wh:
        everything, scoped = _scoped_markets(wh, dates, config.event_tickers)
        allowed = set(everything["ticker"])
        scoped_events = set(scoped["event_ticker"])
        # One date at a time, each in its own transaction: bounded memory on long single-run backfills,
        # and a failure leaves that date exactly as it was.
        for day in dates:
            params: dict[str, Any] = {"day": day}
            sql = "SELECT * FROM kalshi.candlesticks_raw WHERE game_date = %(day)s"
            if config.start_ts is not None:
                sql += " AND end_period_ts >= %(start)s"
                params["start"] = pd.Timestamp(config.start_ts, unit="s", tz="UTC").to_pydatetime()
            raw = with_columns(
                wh.query_df(sql + " ORDER BY ticker, end_period_ts", params), RAW_COLUMNS
            )
            raw = raw[raw["event_ticker"].isin(scoped_events)].reset_index(drop=True)
            day_markets = scoped.loc[
                scoped["game_date"].map(lambda d, day=day: d == day).astype(bool)
            ]
            parsed, unparseable = parse_raw(raw)
            valid, rejected = validate_candles(parsed, allowed)
            if len(unparseable):
                rejected = pd.concat([rejected, unparseable], ignore_index=True)
            tickers = sorted(set(day_markets["ticker"]) | set(raw["ticker"]))
            day_end = int(parsed["end_period_ts"].max()) if len(parsed) else None
            with wh.transaction() as tx:
                if tickers and day_end is not None:
                    for name in ("candlesticks", "candlesticks_rejected"):
                        tx.delete_candles(name, tickers, window_start, day_end, PERIOD_INTERVAL)
                if len(rejected):
                    tx.upsert(
                        "candlesticks_rejected", to_table(rejected, REJECTED_COLUMNS, ingested_at)
                    )
                if len(valid):
                    tx.upsert("candlesticks", to_table(valid, CANDLE_COLUMNS, ingested_at))
            counts["valid"] += len(valid)
            counts["rejected"] += len(rejected)
            counts["raw"] += len(raw)
            if day_end is not None:
                window_end = day_end if window_end is None else max(window_end, day_end)
            for reasons_text in rejected["reasons"] if len(rejected) else ():
                for reason in str(reasons_text).split("; "):
                    reason_counts[reason] = reason_counts.get(reason, 0) + 1
            if preview.empty and len(valid):
                preview = valid.head(PREVIEW_ROWS)
            if len(day_markets):
                # The grid needs five columns of the stored rows; the schema sample needs whole rows.
                written = with_columns(
                    wh.query_df(
                        f"SELECT {', '.join(GRID_COLUMNS)} FROM kalshi.candlesticks "
                        "WHERE game_date = %(day)s ORDER BY ticker, end_period_ts",
                        {"day": day},
                    ),
                    GRID_COLUMNS,
                )
                if sample.empty and len(written):
                    sample = with_columns(
                        wh.query_df(
                            "SELECT * FROM kalshi.candlesticks WHERE game_date = %(day)s "
                            f"ORDER BY ticker, end_period_ts LIMIT {SCHEMA_SAMPLE_ROWS}",
                            {"day": day},
                        ),
                        CANDLE_COLUMNS,
                    )
                written = written[written["event_ticker"].isin(scoped_events)]
                games += game_completeness(day_markets, written, window_start_ts=window_start)
        if sample.empty:
            sample = wh.query_df("SELECT * FROM kalshi.candlesticks LIMIT 1")

    total = counts["valid"] + counts["rejected"]
    fraction = counts["rejected"] / total if total else 0.0
    reasons = dict(sorted(reason_counts.items(), key=lambda kv: -kv[1])[:10])
    rejects_check = dg.AssetCheckResult(
        asset_key=CANDLES_KEY,
        check_name="rejects",
        passed=counts["rejected"] == 0,
        severity=dg.AssetCheckSeverity.ERROR
        if fraction > config.max_reject_fraction
        else dg.AssetCheckSeverity.WARN,
        metadata={
            "rejects": counts["rejected"],
            "candles": total,
            "reject_fraction": dg.MetadataValue.float(round(fraction, 6)),
            "max_reject_fraction": dg.MetadataValue.float(config.max_reject_fraction),
            "top_reasons": dg.MetadataValue.json({str(k): int(v) for k, v in reasons.items()}),
        },
    )

    failing = [g for g in games if g.missing_fraction > config.max_missing_fraction]
    grid_md = [
        "| game | active | candles | traded | no-trade | missing |",
        "|---|---|---|---|---|---|",
    ]
    grid_md += [
        f"| {g.event_ticker} | {g.active_minutes} | {g.candle_minutes} | {g.traded_minutes} | "
        f"{g.no_trade_minutes} | {g.missing_minutes} |"
        for g in games[:50]
    ]
    grid_check = dg.AssetCheckResult(
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
        },
    )
    schema_check = schema_check_result(
        CANDLES_KEY, sample, CANDLE_COLUMNS, [*PRICE_COLUMNS, *COUNT_COLUMNS]
    )
    context.log.info(
        f"{counts['valid']} valid, {counts['rejected']} rejected candles for {dates_label(dates)}"
    )
    return dg.MaterializeResult(
        metadata={
            "dates": dates_label(dates),
            "games": int(scoped["event_ticker"].nunique()),
            "markets": len(scoped),
            "candles": counts["valid"],
            "rejects": counts["rejected"],
            "raw_rows": counts["raw"],
            "api_requests": 0,
            "api_retries": 0,
            "window": (
                f"end_period_ts >= {window_start} .. {window_end}"
                if window_end is not None
                else "empty"
            ),
            "preview": preview_md(
                preview.assign(
                    end_period_ts=pd.to_datetime(preview["end_period_ts"], unit="s", utc=True)
                )
                if len(preview)
                else preview,
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
        check_results=[schema_check, rejects_check, grid_check],
    )
