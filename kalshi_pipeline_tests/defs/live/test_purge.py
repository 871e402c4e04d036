"""`purge_old_live_runs` deletes finished live runs past their age and nothing else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg

from kalshi_pipeline.defs.live.jobs import LIVE_DATE_TAG, LIVE_TAG
from kalshi_pipeline.defs.live.purge import purge_live_runs, purge_old_live_runs

S = dg.DagsterRunStatus


def add(instance: dg.DagsterInstance, status: dg.DagsterRunStatus, live: bool = True) -> str:
    run_id = str(uuid.uuid4())
    tags = {LIVE_TAG: "true", LIVE_DATE_TAG: "2026-01-09"} if live else {"other": "x"}
    instance.add_run(
        dg.DagsterRun(job_name="kalshi_live_job", run_id=run_id, status=status, tags=tags)
    )
    return run_id


def test_purge_keeps_young_runs_running_runs_and_other_jobs() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        done = [add(instance, S.SUCCESS) for _ in range(3)] + [add(instance, S.CANCELED)]
        failed = add(instance, S.FAILURE)
        running = add(instance, S.STARTED)
        foreign = add(instance, S.SUCCESS, live=False)
        now = datetime.now(UTC)

        def remaining() -> set[str]:
            return {r.run_id for r in instance.get_runs()}

        # Nothing is old enough yet.
        def purge(at: datetime) -> dict[str, int]:
            return purge_live_runs(
                instance,
                now=at,
                older_than=timedelta(hours=24),
                failed_older_than=timedelta(hours=168),
            )

        assert purge(now) == {"success": 0, "failure": 0}
        assert purge(now + timedelta(hours=25)) == {
            "success": 4,
            "failure": 0,
        }
        assert remaining() == {failed, running, foreign}
        assert not set(done) & remaining()
        assert purge(now + timedelta(hours=169)) == {
            "success": 0,
            "failure": 1,
        }
        assert remaining() == {running, foreign}


def test_purge_job_runs_on_the_instance() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        old = [add(instance, S.SUCCESS) for _ in range(2)]
        result = purge_old_live_runs.execute_in_process(
            instance=instance,
            # A tiny age makes the runs just added old enough (and keeps the purge run itself).
            run_config={"ops": {"purge_live_runs": {"config": {"older_than_hours": 1e-9}}}},
        )
        assert result.success
        assert result.output_for_node("purge_live_runs") == 2
        ids = {r.run_id for r in instance.get_runs()}
        assert not set(old) & ids and result.run_id in ids
