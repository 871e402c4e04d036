"""Discovery and nightly-sweep schedules evaluated at chosen instants."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from kalshi_pipeline.definitions import defs
from kalshi_pipeline.defs.live.schedules import discovery_schedule, nightly_sweep_schedule


def test_discovery_covers_today_and_tomorrow_in_new_york() -> None:
    # 03:00 UTC on Jan 10 is still Jan 9 in New York.
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
    )
    requests = list(discovery_schedule(context))
    assert [r.partition_key for r in requests] == ["2026-01-09", "2026-01-10"]
    assert len({r.run_key for r in requests}) == 2
    assert discovery_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert discovery_schedule.cron_schedule == "0 * * * *"


def test_nightly_sweep_pulls_yesterday_in_full() -> None:
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 1, 10, 11, 0, tzinfo=UTC)  # 06:00 ET
    )
    request = nightly_sweep_schedule(context)
    assert request.partition_key == "2026-01-09"
    assert request.run_key == "sweep:2026-01-09"
    assert not request.run_config  # full window: the assets' defaults (all games, from open_time)
    job = defs.resolve_job_def(nightly_sweep_schedule.job_name)
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "kalshi/markets",
        "kalshi/candlesticks_raw",
        "kalshi/candlesticks",
    }


def test_schedules_target_in_process_jobs() -> None:
    for name in (
        "kalshi_live_job",
        "kalshi_discovery_job",
        "kalshi_sweep_job",
        "purge_old_live_runs",
    ):
        assert defs.resolve_job_def(name).executor_def.name == "in_process"
