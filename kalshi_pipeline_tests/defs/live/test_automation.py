"""The cron automation of the assets, evaluated at chosen instants (no daemon, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from kalshi_pipeline.definitions import defs
from kalshi_pipeline.defs.live.automation import AUTOMATION_SENSOR_NAME, DISCOVERY_CRON, SWEEP_CRON

MARKETS = "kalshi/markets"
RAW = "kalshi/candlesticks_raw"
CANDLES = "kalshi/candlesticks"


def _requested(*instants: datetime) -> dict[str, list[str]]:
    """Evaluate the code location's automation at each instant in turn; return the last one's requests."""
    definitions = defs()
    instance = dg.DagsterInstance.ephemeral()
    cursor = None
    requested: dict[str, list[str]] = {}
    for instant in instants:
        result = dg.evaluate_automation_conditions(
            defs=definitions, instance=instance, evaluation_time=instant, cursor=cursor
        )
        cursor = result.cursor
        requested = {
            r.key.to_user_string(): sorted(
                p.partition_key or "" for p in r.true_subset.expensively_compute_asset_partitions()
            )
            for r in result.results
            if r.true_subset.size
        }
    return requested


def test_discovery_covers_today_and_tomorrow_in_new_york_every_hour() -> None:
    # 03:00 UTC on Jan 10 is 22:00 on Jan 9 in New York: an hourly tick, not the sweep's.
    requested = _requested(
        datetime(2026, 1, 10, 2, 59, 30, tzinfo=UTC), datetime(2026, 1, 10, 3, 0, 30, tzinfo=UTC)
    )
    assert requested == {MARKETS: ["2026-01-09", "2026-01-10"]}


def test_nothing_between_ticks() -> None:
    requested = _requested(
        datetime(2026, 1, 10, 3, 0, 30, tzinfo=UTC), datetime(2026, 1, 10, 3, 20, 0, tzinfo=UTC)
    )
    assert requested == {}


def test_nightly_sweep_pulls_yesterday_in_full_with_the_hourly_discovery() -> None:
    # 11:00 UTC on Jan 10 is 06:00 ET: the sweep of Jan 9 (all three assets) and the hourly discovery.
    requested = _requested(
        datetime(2026, 1, 10, 10, 59, 30, tzinfo=UTC), datetime(2026, 1, 10, 11, 0, 30, tzinfo=UTC)
    )
    assert requested == {
        MARKETS: ["2026-01-09", "2026-01-10", "2026-01-11"],
        RAW: ["2026-01-09"],
        CANDLES: ["2026-01-09"],
    }


def test_automation_sensor_runs_by_default_and_crons_are_eastern() -> None:
    repo = defs().get_repository_def()
    sensor = repo.get_sensor_def(AUTOMATION_SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert (DISCOVERY_CRON, SWEEP_CRON) == ("0 * * * *", "0 6 * * *")
    assert {s.name for s in repo.schedule_defs} == {"purge_old_live_runs_schedule"}


def test_every_job_runs_in_process() -> None:
    definitions = defs()
    for name in (
        "kalshi_live_job",
        "kalshi_discovery_job",
        "kalshi_sweep_job",
        "purge_old_live_runs",
        "kalshi_stream_job",
    ):
        assert definitions.resolve_job_def(name).executor_def.name == "in_process"
