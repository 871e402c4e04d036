"""`purge_old_live_runs`: deletes finished live-sensor runs after a while.

The live sensor launches a run every ~15 s per game date, ~240 an hour on a busy night. Dagster prunes
sensor ticks (`retention` in dagster.yaml) but keeps runs forever, which slows the run list and grows the
run and event-log storage, so this hourly job deletes finished runs tagged `kalshi/live=true` through the
instance API (runs and their event logs). Failures are kept longer than successes for debugging.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from kalshi_pipeline.defs.live.jobs import LIVE_TAG, MAINTENANCE_TAG
from kalshi_pipeline.executor import run_executor

SUCCESSFUL = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELED]
FAILED = [dg.DagsterRunStatus.FAILURE]
BATCH = 500


class PurgeConfig(dg.Config):
    """How old finished live runs must be before they are deleted."""

    older_than_hours: float = Field(
        default=24.0,
        gt=0,
        description="Delete successful/canceled live runs last updated before this.",
    )
    failed_older_than_hours: float = Field(
        default=168.0, gt=0, description="Delete failed live runs last updated before this."
    )
    max_runs: int = Field(default=20_000, gt=0, description="At most this many deletions per run.")


def purge_live_runs(
    instance: dg.DagsterInstance,
    *,
    now: datetime,
    older_than: timedelta,
    failed_older_than: timedelta,
    max_runs: int = 20_000,
    exclude_run_ids: frozenset[str] = frozenset(),
) -> dict[str, int]:
    """Delete finished live runs older than the cutoffs; return the counts per outcome."""
    counts = {"success": 0, "failure": 0}
    for outcome, statuses, age in (
        ("success", SUCCESSFUL, older_than),
        ("failure", FAILED, failed_older_than),
    ):
        cutoff = now - age
        while counts["success"] + counts["failure"] < max_runs:
            records = instance.get_run_records(
                filters=dg.RunsFilter(
                    tags={LIVE_TAG: "true"}, statuses=statuses, updated_before=cutoff
                ),
                limit=min(BATCH, max_runs - counts["success"] - counts["failure"]),
                ascending=True,
            )
            doomed = [
                r.dagster_run.run_id for r in records if r.dagster_run.run_id not in exclude_run_ids
            ]
            for run_id in doomed:
                instance.delete_run(run_id)
            counts[outcome] += len(doomed)
            if len(records) < BATCH or not doomed:
                break
    return counts


@dg.op(
    name="purge_live_runs",
    description="Delete finished live-sensor runs (tag kalshi/live=true) older than the configured age.",
)
def purge_live_runs_op(context: dg.OpExecutionContext, config: PurgeConfig) -> dg.Output[int]:
    """Delete old finished live runs and report how many went."""
    counts = purge_live_runs(
        context.instance,
        now=datetime.now(UTC),
        older_than=timedelta(hours=config.older_than_hours),
        failed_older_than=timedelta(hours=config.failed_older_than_hours),
        max_runs=config.max_runs,
        exclude_run_ids=frozenset({context.run_id}),
    )
    context.log.info(
        f"deleted {counts['success']} finished and {counts['failure']} failed live runs"
    )
    return dg.Output(
        counts["success"] + counts["failure"],
        metadata={"deleted_finished": counts["success"], "deleted_failed": counts["failure"]},
    )


@dg.job(
    name="purge_old_live_runs",
    executor_def=run_executor,
    tags={MAINTENANCE_TAG: "purge_old_live_runs"},
    description="Housekeeping: delete finished live-sensor runs older than N hours (default 24).",
)
def purge_old_live_runs() -> None:
    """Delete old finished live runs."""
    purge_live_runs_op()


purge_schedule = dg.ScheduleDefinition(
    name="purge_old_live_runs_schedule",
    cron_schedule="17 * * * *",
    job=purge_old_live_runs,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: delete finished live runs older than 24 h (failed ones after 7 days).",
)
