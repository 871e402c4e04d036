"""Cron automation of the assets: hourly discovery of today's and tomorrow's games, a nightly sweep of yesterday.

Declared as automation conditions on the assets (see each asset's `automation_condition`) and evaluated by
`kalshi_automation`, an automation-condition sensor that is RUNNING by default: without discovery the live
sensor knows no games, and the sweep is what makes yesterday's tables complete (late settlements, minutes a
live run missed) without anyone watching.

The game-date partitions end with tomorrow (`end_offset=2`), so "the latest two partitions" are today and
tomorrow in America/New_York, and the third from the end is yesterday.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from kalshi_pipeline.defs.partitions import GAME_TIMEZONE

DISCOVERY_CRON = "0 * * * *"
# 06:00 ET: West-coast games end around 01:30 ET and Kalshi settles them within the hour or two after.
SWEEP_CRON = "0 6 * * *"
AUTOMATION_SENSOR_NAME = "kalshi_automation"
#: Tags every run of the cron automation carries (the UI filters on them).
AUTOMATION_TAG = "kalshi/automation"


def _latest_partitions(count: int) -> dg.AutomationCondition:
    return dg.AutomationCondition.in_latest_time_window(timedelta(days=count))


TODAY_AND_TOMORROW = _latest_partitions(2)
YESTERDAY = _latest_partitions(3) & ~_latest_partitions(2)

#: `kalshi/markets`: every hour for today and tomorrow (start times and statuses move), and with the sweep.
DISCOVERY_CONDITION = (
    dg.AutomationCondition.cron_tick_passed(DISCOVERY_CRON, GAME_TIMEZONE) & TODAY_AND_TOMORROW
) | (dg.AutomationCondition.cron_tick_passed(SWEEP_CRON, GAME_TIMEZONE) & YESTERDAY)
#: The candle assets: once a night, yesterday's games over the markets' whole life.
SWEEP_CONDITION = dg.AutomationCondition.cron_tick_passed(SWEEP_CRON, GAME_TIMEZONE) & YESTERDAY

kalshi_automation = dg.AutomationConditionSensorDefinition(
    AUTOMATION_SENSOR_NAME,
    target=dg.AssetSelection.groups("kalshi"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags={AUTOMATION_TAG: "cron"},
    description=(
        "Evaluates the assets' cron conditions: kalshi/markets hourly for today and tomorrow (ET), and a "
        "full sweep of yesterday's markets and candles at 06:00 ET."
    ),
)
