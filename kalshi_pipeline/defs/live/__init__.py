"""Live-game automation: `live_games_sensor`, discovery / nightly-sweep schedules and run housekeeping."""

import dagster as dg

from kalshi_pipeline.defs.live.jobs import discovery_job, live_job, sweep_job
from kalshi_pipeline.defs.live.purge import purge_old_live_runs, purge_schedule
from kalshi_pipeline.defs.live.schedules import discovery_schedule, nightly_sweep_schedule
from kalshi_pipeline.defs.live.sensor import live_games_sensor
from kalshi_pipeline.defs.resources import default_resources

defs = dg.Definitions(
    jobs=[live_job, discovery_job, sweep_job, purge_old_live_runs],
    sensors=[live_games_sensor],
    schedules=[discovery_schedule, nightly_sweep_schedule, purge_schedule],
    resources=default_resources(),
)
