"""Live polling of game states: `live_game_states_sensor` launches `kalshi_game_states_job` for live dates.

Every `KALSHI_LIVE_GAME_STATE_SECONDS` (default 10 s) a date with a live game (from tip-off minus the live
lead until `max_hours` after tip-off, not yet settled, as the live sensor counts it) gets one run of
`kalshi/game_states` then `kalshi/game_probabilities`, so the newest probability row carries the current
score and clock. The run's requests go through the same client and shared rate budget as every other run.
A date whose previous poll is still queued or running is skipped (no pile-up). The sensor reads only the
warehouse and the run records.

It is off by default because both live modes already poll game states without a run of their own: in rest
mode every live refresh of `live_games_sensor` polls its live games' state (stored milestone ids, one
`GET /live_data/batch`) and recomputes their minute probabilities; in websocket mode the stream run polls
every `KALSHI_LIVE_GAME_STATE_SECONDS` from inside (`defs/stream/game_rows.py`), which avoids a daemon-launched
run (2-7 s to start here) every few seconds. Turn it on (UI or `dagster sensor start`) only to poll dates
the live sensor does not watch, or on its own cadence in rest mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd

from kalshi_pipeline.defs.games.assets import GAME_PROBABILITIES_KEY, GAME_STATES_KEY
from kalshi_pipeline.defs.partitions import GAME_TZ, game_date_partitions
from kalshi_pipeline.defs.resources import KalshiApiResource, LiveResource, WarehouseResource
from kalshi_pipeline.executor import run_executor
from kalshi_pipeline.warehouse import WarehouseError

GAME_STATES_JOB_NAME = "kalshi_game_states_job"
SENSOR_NAME = "live_game_states_sensor"
#: Marks the sensor's runs with their game date (one in flight per date).
POLL_DATE_TAG = "kalshi/game_states_date"
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

game_states_job = dg.define_asset_job(
    GAME_STATES_JOB_NAME,
    selection=dg.AssetSelection.assets(GAME_STATES_KEY, GAME_PROBABILITIES_KEY),
    partitions_def=game_date_partitions,
    executor_def=run_executor,
    description="Poll the live data of a date's games, then recompute their win probabilities.",
)


@dataclass(frozen=True)
class Poll:
    """One run to launch: the date and its run key (one per date and polling interval)."""

    game_date: date
    run_key: str


def live_dates(
    games: pd.DataFrame, now: datetime, lead: timedelta, max_live: timedelta
) -> list[date]:
    """Dates with a game between tip-off minus `lead` and tip-off plus `max_live`, not all settled."""
    out: set[date] = set()
    for start, settled, day in zip(
        games["scheduled_start"], games["all_settled"], games["game_date"], strict=True
    ):
        if pd.isna(start) or bool(settled):
            continue
        tip = pd.Timestamp(start).to_pydatetime()
        if tip - lead <= now <= tip + max_live:
            out.add(day)
    return sorted(out)


def plan_polls(
    dates: Iterable[date], busy: set[date], now: datetime, interval_s: int
) -> list[Poll]:
    """A poll per live date not already in flight, keyed by the interval bucket of `now`."""
    bucket = int(now.timestamp()) // interval_s
    return [Poll(d, f"game-states-{d.isoformat()}-{bucket}") for d in dates if d not in busy]


def _busy(instance: dg.DagsterInstance) -> set[date]:
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=GAME_STATES_JOB_NAME, statuses=_IN_FLIGHT), limit=100
    )
    return {
        date.fromisoformat(value)
        for r in records
        if (value := r.dagster_run.tags.get(POLL_DATE_TAG))
    }


@dg.sensor(
    name=SENSOR_NAME,
    jobs=[game_states_job],
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Polls live games' state every KALSHI_LIVE_GAME_STATE_SECONDS (default 10 s) and recomputes their "
        "win probabilities: one kalshi_game_states_job run per live date at a time."
    ),
)
def live_game_states_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    kalshi: KalshiApiResource,
    live: LiveResource,
) -> dg.SensorResult:
    """Request a game-state poll for each date with a live game."""
    now = datetime.now(UTC)
    settings = live.settings(has_credentials=kalshi.has_credentials)
    today = now.astimezone(GAME_TZ).date()
    try:
        with warehouse.open() as wh:
            games = wh.games(game_dates=[today - timedelta(days=1), today])
    except WarehouseError as exc:
        return dg.SensorResult(skip_reason=f"Warehouse unavailable, retrying next tick: {exc}")
    dates = live_dates(games, now, settings.lead, settings.max_live)
    polls = plan_polls(dates, _busy(context.instance), now, live.game_state_seconds)
    if not polls:
        return dg.SensorResult(skip_reason="No live game to poll.")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=p.run_key,
                job_name=GAME_STATES_JOB_NAME,
                partition_key=p.game_date.isoformat(),
                tags={POLL_DATE_TAG: p.game_date.isoformat()},
            )
            for p in polls
        ]
    )
