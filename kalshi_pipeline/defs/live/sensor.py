"""`live_games_sensor`: keeps live games' candles fresh from the warehouse's view of the schedule.

Every few seconds the sensor reads the stored games of yesterday, today and tomorrow (ET) and the newest
stored candle minute of the live ones (two cheap queries, no API call) and requests, per game date:

- a live refresh of the live games' candles from the newest stored minute (run key per date and
  `KALSHI_LIVE_REFRESH_SECONDS` bucket), with `kalshi/markets` riding along every few minutes so closes,
  settlements and moved tip-offs reach the warehouse;
- once a game has settled, one final full-window reconcile of it (run key `final:<event ticker>`, also
  recorded in the cursor);
- a markets-only refresh for dates about to go live or with nothing stored yet.

A date with a live run queued or in progress gets nothing new (the `kalshi/live_game_date` tag is also
limited to one run per value in dagster.yaml). `KALSHI_LIVE_MODE=websocket` swaps the live refreshes for
one long-running stream run per date (from `kalshi_pipeline.defs.stream`) plus periodic REST reconciles.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from kalshi_pipeline.defs.games.assets import GAME_PROBABILITIES_KEY
from kalshi_pipeline.defs.live.jobs import (
    CANDLE_KEYS,
    GAME_KEYS,
    LIVE_DATE_TAG,
    LIVE_KIND_TAG,
    LIVE_TAG,
    candle_run_config,
    discovery_job,
    live_job,
    own_checks,
)
from kalshi_pipeline.defs.live.planning import (
    CandleRequest,
    LivePlan,
    LiveSettings,
    MarketsRequest,
    dump_cursor,
    games_from_frame,
    parse_cursor,
    plan_tick,
)
from kalshi_pipeline.defs.markets.assets import MARKETS_KEY
from kalshi_pipeline.defs.partitions import GAME_TZ
from kalshi_pipeline.defs.resources import KalshiApiResource, LiveResource, WarehouseResource
from kalshi_pipeline.defs.stream.jobs import STREAM_DATE_TAG, stream_job, stream_run_request
from kalshi_pipeline.warehouse.errors import WarehouseError

SENSOR_NAME = "live_games_sensor"
MINIMUM_INTERVAL_SECONDS = 5

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def watched_dates(now: datetime) -> list[date]:
    """Return the game dates the sensor looks at: yesterday, today and tomorrow in America/New_York.

    Yesterday covers late games still live after midnight and the final reconcile of last night's games.
    """
    today = now.astimezone(GAME_TZ).date()
    return [today - timedelta(days=1), today, today + timedelta(days=1)]


def in_flight_dates(instance: dg.DagsterInstance) -> tuple[set[date], set[date]]:
    """Return (dates with a live run, dates with a stream run) queued or in progress, from one query."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={LIVE_TAG: "true"}, statuses=IN_FLIGHT), limit=100
    )
    busy: set[date] = set()
    streaming: set[date] = set()
    for record in records:
        tags = record.dagster_run.tags
        # A stream run lives as long as its games and carries its own date tag, never the live one.
        if value := tags.get(LIVE_DATE_TAG):
            busy.add(date.fromisoformat(value))
        if tags.get(LIVE_KIND_TAG) == "stream" and (value := tags.get(STREAM_DATE_TAG)):
            streaming.add(date.fromisoformat(value))
    return busy, streaming


def _tags(game_date: date, kind: str) -> dict[str, str]:
    return {LIVE_TAG: "true", LIVE_DATE_TAG: game_date.isoformat(), LIVE_KIND_TAG: kind}


def run_requests(plan: LivePlan) -> list[dg.RunRequest]:
    """Turn a tick's plan into Dagster run requests (in-process live, discovery and stream jobs)."""
    requests: list[dg.RunRequest] = []
    for stream in plan.streams:
        req = stream_run_request(stream.game_date.isoformat(), list(stream.event_tickers))
        # The in-flight check stops repeats while the stream runs; the bucketed key also dedupes ticks
        # that race the run's creation, and lets a crashed stream restart in the next bucket.
        requests.append(
            req.with_replaced_attrs(
                tags={LIVE_TAG: "true", LIVE_KIND_TAG: "stream", **req.tags},
                run_key=stream.run_key,
            )
        )
    for candle in plan.candles:
        requests.append(_candle_request(candle))
    for markets in plan.markets:
        requests.append(_markets_request(markets))
    return requests


def _checks_for(keys: list[dg.AssetKey]) -> list[dg.AssetCheckKey]:
    # Without an explicit list Dagster adds every check of the selected assets in the code location,
    # including separately defined check ops the live job leaves out (see jobs.live_job).
    return [check for check in own_checks() if check.asset_key in keys]


def game_keys(kind: str) -> tuple[dg.AssetKey, ...]:
    """The game assets a candle run of this kind refreshes after the candles.

    A REST live refresh polls the live games' state and recomputes their probabilities; a websocket-mode
    reconcile only recomputes the per-minute probabilities (the stream run polls the state); a final
    reconcile does both, with the play-by-play.
    """
    return (GAME_PROBABILITIES_KEY,) if kind == "reconcile" else GAME_KEYS


def _candle_request(req: CandleRequest) -> dg.RunRequest:
    games = game_keys(req.kind)
    keys = [*([MARKETS_KEY] if req.with_markets else []), *CANDLE_KEYS, *games]
    config = candle_run_config(
        req.event_tickers, req.start_ts, game_keys=games, replay_pbp=req.kind == "final"
    )
    return dg.RunRequest(
        run_key=req.run_key,
        job_name=live_job.name,
        partition_key=req.game_date.isoformat(),
        asset_selection=keys,
        asset_check_keys=_checks_for(keys),
        run_config=config,
        tags=_tags(req.game_date, req.kind),
    )


def _markets_request(req: MarketsRequest) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=req.run_key,
        job_name=live_job.name,
        partition_key=req.game_date.isoformat(),
        asset_selection=[MARKETS_KEY],
        asset_check_keys=_checks_for([MARKETS_KEY]),
        tags=_tags(req.game_date, "markets"),
    )


def evaluate(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    settings: LiveSettings,
    now: datetime,
) -> dg.SensorResult:
    """Run one tick of the live sensor (see the module docstring) with the given settings and clock."""
    now = now.astimezone(UTC)
    if settings.note:
        context.log.warning(settings.note)
    cursor = parse_cursor(context.cursor)
    try:
        with warehouse.open() as wh:
            games = games_from_frame(wh.games(game_dates=watched_dates(now)))
            live_tickers = [t for g in games if g.is_live(now, settings) for t in g.market_tickers]
            newest = {
                ticker: int(ts.timestamp())
                for ticker, ts in wh.newest_candle_ts(live_tickers).items()
            }
    except WarehouseError as exc:
        return dg.SensorResult(skip_reason=f"Warehouse unavailable, retrying next tick: {exc}")

    busy, streaming = in_flight_dates(context.instance)
    if settings.mode != "websocket":
        streaming = set()
    plan = plan_tick(games, newest, now, busy, cursor, settings, streaming_dates=streaming)
    requests = run_requests(plan)
    new_cursor = dump_cursor(plan.cursor)
    if not requests:
        return dg.SensorResult(
            skip_reason=plan.skip_reason or "Nothing to refresh.", cursor=new_cursor
        )
    for game in plan.live_games:
        context.log.debug(f"live: {game.event_ticker} (tip-off {game.scheduled_start})")
    return dg.SensorResult(run_requests=requests, cursor=new_cursor)


@dg.sensor(
    name=SENSOR_NAME,
    jobs=[live_job, discovery_job, stream_job],
    minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Refreshes live games' candles (tip-off minus 15 min until the markets close) every ~15 s from "
        "the newest stored minute, refreshes their markets, and reconciles each game once after it "
        "settles. Reads only the warehouse. Streams over the WebSocket when Kalshi credentials are set "
        "(KALSHI_LIVE_MODE=websocket|rest overrides)."
    ),
)
def live_games_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    kalshi: KalshiApiResource,
    live: LiveResource,
) -> dg.SensorResult:
    """Request live refreshes, markets refreshes and final reconciles of the stored games."""
    settings = live.settings(has_credentials=kalshi.has_credentials)
    return evaluate(context, warehouse, settings, datetime.now(UTC))
