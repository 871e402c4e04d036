"""Schedules: hourly discovery of today's and tomorrow's games, and a nightly full sweep of yesterday.

Both are RUNNING by default: without discovery the live sensor knows no games, and the sweep is what
makes yesterday's tables complete (late settlements, minutes a live run missed) without anyone watching.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg

from kalshi_pipeline.defs.live.jobs import discovery_job, sweep_job
from kalshi_pipeline.defs.partitions import GAME_TIMEZONE, GAME_TZ

DISCOVERY_CRON = "0 * * * *"
# 06:00 ET: West-coast games end around 01:30 ET and Kalshi settles them within the hour or two after.
SWEEP_CRON = "0 6 * * *"


@dg.schedule(
    name="kalshi_discovery_schedule",
    cron_schedule=DISCOVERY_CRON,
    job=discovery_job,
    execution_timezone=GAME_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: discover today's and tomorrow's games (ET); start times and statuses move.",
)
def discovery_schedule(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
    """Request `kalshi/markets` for today's and tomorrow's game dates (America/New_York)."""
    local = context.scheduled_execution_time.astimezone(GAME_TZ)
    today, stamp = local.date(), local.strftime("%Y-%m-%dT%H:%M")
    for game_date in (today, today + timedelta(days=1)):
        yield dg.RunRequest(
            run_key=f"discovery:{game_date.isoformat()}:{stamp}",
            partition_key=game_date.isoformat(),
            tags={"kalshi/schedule": "discovery"},
        )


@dg.schedule(
    name="kalshi_nightly_sweep_schedule",
    cron_schedule=SWEEP_CRON,
    job=sweep_job,
    execution_timezone=GAME_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="06:00 ET: full pull of yesterday's games (markets, raw and validated candles, full window).",
)
def nightly_sweep_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Request all three assets of yesterday's game date over the markets' whole life."""
    yesterday = context.scheduled_execution_time.astimezone(GAME_TZ).date() - timedelta(days=1)
    return dg.RunRequest(
        run_key=f"sweep:{yesterday.isoformat()}",
        partition_key=yesterday.isoformat(),
        tags={"kalshi/schedule": "nightly_sweep"},
    )
