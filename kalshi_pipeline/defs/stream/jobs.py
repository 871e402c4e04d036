"""The WebSocket stream job: one long-running run per game date while its games are live.

`stream_run_request(game_date, event_tickers)` is what the live sensor launches in websocket mode
(`KALSHI_LIVE_MODE=websocket`); the run's single op streams until every market of those games has settled,
or until the run is cancelled (Dagster's Terminate), writing ticks, trades, stream events and `ws` candles,
and replacing closed minutes with REST candles as it goes (see `runner.py`).
"""

import asyncio
import time
from collections.abc import Sequence
from datetime import date
from typing import Any

import dagster as dg
from pydantic import Field

from kalshi_pipeline.defs.resources import KalshiApiResource, LiveResource, WarehouseResource
from kalshi_pipeline.defs.stream.assets import (
    STREAM_CANDLES_KEY,
    STREAM_EVENTS_KEY,
    TICKS_KEY,
    TRADES_KEY,
)
from kalshi_pipeline.defs.stream.game_rows import GameFeed
from kalshi_pipeline.defs.stream.runner import (
    DEFAULT_CHANNELS,
    StreamRunner,
    StreamSettings,
    StreamSummary,
    quantiles,
)
from kalshi_pipeline.executor import run_executor
from kalshi_pipeline.kalshi.ws import CHANNELS, KalshiWebSocket

STREAM_JOB_NAME = "kalshi_stream_job"
STREAM_OP_NAME = "stream_live_games"
STREAM_DATE_TAG = "kalshi/stream_game_date"
STREAM_EVENTS_TAG = "kalshi/stream_events"
_CANCEL_POLL_S = 5.0
MAX_RUNTIME_S = 12 * 3600
_STOPPING = (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)


class StreamConfig(dg.Config):
    """Run config of a stream run."""

    game_date: str = Field(
        description="The game date (YYYY-MM-DD, America/New_York) being streamed."
    )
    event_tickers: list[str] = Field(description="The games (event tickers) to stream.")
    channels: list[str] = Field(
        default=list(DEFAULT_CHANNELS),
        description="WebSocket channels (ticker and trade build the candles; lifecycle ends the run early).",
    )
    max_seconds: float | None = Field(
        default=None, description="Stop after this many seconds (None = until the games settle)."
    )
    flush_delay_s: float = Field(
        default=0.25, description="Longest a row waits before it is written."
    )
    reconcile_every_s: float = Field(
        default=10.0, description="How often closed minutes are replaced by REST candles."
    )
    settle_poll_s: float = Field(
        default=30.0, description="How often market statuses are polled over REST."
    )
    progress_every_s: float | None = Field(
        default=None,
        gt=0,
        description=(
            "How often the run reports what it wrote (materializations of the stream tables); None = "
            "the live resource's progress_seconds (KALSHI_LIVE_PROGRESS_SECONDS, default 60)."
        ),
    )


def _check_request(game_date: str, event_tickers: Sequence[str]) -> list[str]:
    try:
        date.fromisoformat(game_date)
    except ValueError:
        raise ValueError(f"stream game_date {game_date!r} is not YYYY-MM-DD") from None
    tickers = [t.strip() for t in event_tickers if t and t.strip()]
    if not tickers:
        raise ValueError(f"stream of {game_date} needs at least one event ticker")
    return sorted(dict.fromkeys(tickers))


@dg.op(
    name=STREAM_OP_NAME,
    description="Stream the games' markets over Kalshi's WebSocket into the warehouse until they settle.",
    tags={"kind": "websocket"},
)
def stream_live_games(
    context: dg.OpExecutionContext,
    config: StreamConfig,
    kalshi: KalshiApiResource,
    warehouse: WarehouseResource,
    live: LiveResource,
) -> dg.Output[dict]:
    """Run the stream of one game date and report what it did as metadata."""
    tickers = _check_request(config.game_date, config.event_tickers)
    unknown = sorted(set(config.channels) - set(CHANNELS))
    if unknown:
        raise dg.Failure(f"unknown channels {unknown}; expected some of {list(CHANNELS)}")
    client_config = kalshi.client_config()
    if not client_config.has_credentials:
        raise dg.Failure(
            "the WebSocket needs credentials: Kalshi rejects unsigned handshakes with 401. Set "
            "KALSHI_API_KEY_ID and KALSHI_PRIVATE_KEY_PATH (or KALSHI_PRIVATE_KEY), or use KALSHI_LIVE_MODE=rest"
        )
    settings = StreamSettings(
        channels=tuple(config.channels),
        flush_delay_s=config.flush_delay_s,
        reconcile_every_s=config.reconcile_every_s,
        settle_poll_s=config.settle_poll_s,
        max_seconds=config.max_seconds,
        progress_every_s=(
            config.progress_every_s
            if config.progress_every_s is not None
            else float(live.progress_seconds)
        ),
    )
    checked = {"at": 0.0, "stop": False}

    def should_stop() -> bool:
        # Dagster's Terminate sets the run to CANCELING and interrupts the process; polling the status too
        # keeps a run that swallowed the interrupt from streaming on.
        now = time.monotonic()
        if now - checked["at"] >= _CANCEL_POLL_S:
            checked["at"] = now
            run = context.instance.get_run_by_id(context.run_id)
            checked["stop"] = run is not None and run.status in _STOPPING
        return bool(checked["stop"])

    def ws_factory(**kwargs: Any) -> KalshiWebSocket:
        return KalshiWebSocket.from_config(client_config, **kwargs)

    with warehouse.open() as wh:
        game_feed = GameFeed(
            warehouse=wh,
            game_date=date.fromisoformat(config.game_date),
            event_tickers=tickers,
            max_spread=live.max_spread(),
            state_poll_s=live.game_state_seconds,
            write_delay_s=config.flush_delay_s,
            logger=context.log,
        )
        game_feed.load_markets()
        runner = StreamRunner(
            client_factory=kalshi.client,
            ws_factory=ws_factory,
            warehouse=wh,
            game_date=date.fromisoformat(config.game_date),
            event_tickers=tickers,
            settings=settings,
            run_id=context.run_id,
            logger=context.log,
            should_stop=should_stop,
            on_progress=lambda summary: report_progress(context, config.game_date, summary),
            game_feed=game_feed,
        )
        context.log.info(
            f"streaming {len(tickers)} games of {config.game_date} from {client_config.websocket_url()}"
        )
        try:
            summary = asyncio.run(runner.run())
        except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):
            # SIGTERM/SIGINT to the run worker (an operator stopping `make dev`, a pod being replaced): the
            # runner has flushed what it had read on its way out; the run executor ends the run CANCELED.
            report_progress(context, config.game_date, runner.summary)
            raise
    report_progress(context, config.game_date, summary)
    latency = quantiles(summary.latency_ms)
    context.log.info(
        f"stream ended ({summary.stop_reason}): {summary.messages} messages, {summary.candles_written} "
        f"candle writes, {summary.reconciled_minutes} minutes reconciled with REST, "
        f"{summary.mismatched_minutes}/{summary.compared_minutes} stream candles differed from REST"
    )
    metadata: dict[str, dg.RawMetadataValue] = {
        "game_date": config.game_date,
        "events": dg.MetadataValue.json(tickers),
        "markets": summary.markets,
        "stop_reason": summary.stop_reason,
        "seconds": dg.MetadataValue.float(float(summary.seconds)),
        "messages": summary.messages,
        "ticks": summary.ticks,
        "trades": summary.trades,
        "candle_writes": summary.candles_written,
        "stream_events": dg.MetadataValue.json(summary.events),
        "reconnects": max(summary.events.get("connect", 0) - 1, 0),
        "gaps": summary.events.get("gap", 0),
        "reconciled_minutes": summary.reconciled_minutes,
        "backfilled_gap_minutes": summary.backfilled_gap_minutes,
        "backfilled_trades": summary.backfilled_trades,
        "resubscribed_silent_channels": summary.resubscribed_silent,
        "compared_minutes": summary.compared_minutes,
        "mismatched_minutes": summary.mismatched_minutes,
        "rest_rejected": summary.rest_rejected,
        "write_errors": summary.write_errors,
        "flushes": summary.flushes,
        "message_to_row_ms": dg.MetadataValue.json(latency),
        "game_feed": dg.MetadataValue.json(vars(game_feed.stats)),
    }
    return dg.Output(
        {
            "stop_reason": summary.stop_reason,
            "messages": summary.messages,
            "mismatched_minutes": summary.mismatched_minutes,
        },
        metadata=metadata,
    )


def report_progress(context: dg.OpExecutionContext, game_date: str, summary: StreamSummary) -> None:
    """Log a materialization of each stream table for the date: rows so far and the newest minute."""
    newest = (
        time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(summary.newest_candle_ts))
        if summary.newest_candle_ts is not None
        else "none yet"
    )
    common: dict[str, dg.RawMetadataValue] = {
        "newest_minute": newest,
        "stream_seconds": dg.MetadataValue.float(round(time.monotonic() - summary.started, 1)),
        "reconnects": max(summary.events.get("connect", 0) - 1, 0),
        "gaps": summary.events.get("gap", 0),
    }
    rows = {
        TICKS_KEY: {"ticks": summary.ticks},
        TRADES_KEY: {"trades": summary.trades},
        STREAM_EVENTS_KEY: {"stream_events": dg.MetadataValue.json(summary.events)},
        STREAM_CANDLES_KEY: {
            "candle_writes": summary.candles_written,
            "reconciled_minutes": summary.reconciled_minutes,
            "mismatched_minutes": summary.mismatched_minutes,
        },
    }
    for key, metadata in rows.items():
        context.log_event(
            dg.AssetMaterialization(
                asset_key=key, partition=game_date, metadata={**metadata, **common}
            )
        )
    context.log.info(
        f"stream of {game_date}: {summary.messages} messages, {summary.ticks} ticks, {summary.trades} "
        f"trades, {summary.candles_written} candle writes, newest minute {newest}"
    )


@dg.job(
    name=STREAM_JOB_NAME,
    executor_def=run_executor,
    description=(
        "Long-running WebSocket stream of one game date's live games (launched by live_games_sensor in "
        "websocket mode); ends when the games settle or the run is terminated."
    ),
    tags={
        "kalshi/stream": "true",
        # On Kubernetes (deploy/helm) each run is a pod: a stream is one long, light process per game date.
        "dagster-k8s/config": {
            "container_config": {
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"memory": "512Mi"},
                }
            }
        },
    },
)
def stream_job() -> None:
    """One op: the stream of one game date."""
    stream_live_games()


def stream_run_request(game_date: str, event_tickers: list[str]) -> dg.RunRequest:
    """The run request of a stream run for `game_date`'s games (what the live sensor launches).

    Raises:
        ValueError: `game_date` is not YYYY-MM-DD, or no event ticker was given.
    """
    tickers = _check_request(game_date, event_tickers)
    return dg.RunRequest(
        job_name=STREAM_JOB_NAME,
        run_config={
            "ops": {STREAM_OP_NAME: {"config": {"game_date": game_date, "event_tickers": tickers}}}
        },
        tags={
            STREAM_DATE_TAG: game_date,
            STREAM_EVENTS_TAG: ",".join(tickers)[:4000],
            # A slate streams from the first tip-off until the last settlement, longer than the instance's
            # default run-monitoring limit meant for short refreshes.
            "dagster/max_runtime": str(MAX_RUNTIME_S),
        },
    )
