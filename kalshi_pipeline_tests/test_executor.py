"""The run worker heartbeat: every run of the project beats, and a stale beat fails a remote worker's run."""

import time

import dagster as dg
from dagster._core.launcher import WorkerStatus

from kalshi_pipeline.heartbeat import (
    HEARTBEAT_STALE_SECONDS,
    HEARTBEAT_TAG,
    heartbeat_age,
    heartbeat_in_process_executor,
)
from kalshi_pipeline.run_launcher import WorkerCheckingRunLauncher
from kalshi_pipeline_tests.processes import wait_for

#: A code server on another host: its worker's pid cannot be checked from here.
REMOTE = {".dagster/grpc_info": '{"host": "code-server", "port": 4000}'}


@dg.op
def sees_its_heartbeat(context: dg.OpExecutionContext) -> float:
    """Wait (generous deadline) until the run's own heartbeat tag shows up, and return its value."""

    def beat() -> str | None:
        run = context.instance.get_run_by_id(context.run_id)
        return None if run is None else run.tags.get(HEARTBEAT_TAG)

    assert wait_for(lambda: beat() is not None, 60, every_s=0.1)
    return float(beat() or 0)


@dg.job(executor_def=heartbeat_in_process_executor)
def beating() -> None:
    sees_its_heartbeat()


def test_a_run_on_the_project_executor_writes_its_heartbeat() -> None:
    with dg.instance_for_test() as instance:
        started = time.time()
        with dg.execute_job(dg.reconstructable(beating), instance=instance) as result:
            assert result.success
            beat = result.output_for_node("sees_its_heartbeat")
        assert started - 1 <= beat <= time.time()


def test_heartbeat_age() -> None:
    run = dg.DagsterRun(job_name="j", run_id="r", tags={HEARTBEAT_TAG: "1000.5"})
    assert heartbeat_age(run, 1010.5) == 10.0
    assert heartbeat_age(dg.DagsterRun(job_name="j", run_id="r"), 1010.5) is None
    garbled = dg.DagsterRun(job_name="j", run_id="r", tags={HEARTBEAT_TAG: "soon"})
    assert heartbeat_age(garbled, 1010.5) is None


def test_a_remote_worker_is_judged_by_its_heartbeat() -> None:
    overrides = {
        "run_launcher": {
            "module": "kalshi_pipeline.run_launcher",
            "class": "WorkerCheckingRunLauncher",
        }
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, WorkerCheckingRunLauncher)
        now = time.time()

        def health(tags: dict[str, str]) -> tuple[WorkerStatus, str]:
            run = dg.DagsterRun(job_name="j", run_id="r", tags={**REMOTE, **tags})
            result = launcher.check_run_worker_health(run)
            return result.status, result.msg or ""

        fresh = health({HEARTBEAT_TAG: f"{now - 5:.3f}"})
        assert fresh[0] == WorkerStatus.RUNNING and "heartbeat" in fresh[1]
        stale = health({HEARTBEAT_TAG: f"{now - HEARTBEAT_STALE_SECONDS - 30:.3f}"})
        assert stale[0] == WorkerStatus.FAILED
        assert "worker on another host" in stale[1] and "run worker is gone" in stale[1]
        never = health({})
        assert never[0] == WorkerStatus.RUNNING and "no heartbeat yet" in never[1]
