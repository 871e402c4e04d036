"""The project's run executor: every run beats, a stale beat fails a remote worker's run, a signal cancels."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import WorkerStatus

from kalshi_pipeline.executor import (
    HEARTBEAT_STALE_SECONDS,
    HEARTBEAT_TAG,
    heartbeat_age,
    run_executor,
)
from kalshi_pipeline.run_launcher import WorkerCheckingRunLauncher
from kalshi_pipeline_tests.processes import wait_for

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
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


@dg.job(executor_def=run_executor)
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


SLEEPY = '''
import time

import dagster as dg

from kalshi_pipeline.executor import run_executor


@dg.op
def wait() -> None:
    """Block for ten minutes (the test stops the run long before)."""
    time.sleep(600)


@dg.job(executor_def=run_executor)
def sleepy() -> None:
    wait()
'''


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_signal_to_the_run_worker_ends_the_run_canceled(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    # The instance's SQLite storage is created before the command starts, so the two do not race to.
    dg.DagsterInstance.from_config(str(home)).dispose()
    log = tmp_path / "execute.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster"), "job", "execute", "-f", "sleepy.py", "-j", "sleepy"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:

            def started() -> bool:
                runs = instance.get_runs(limit=1)
                return bool(runs) and runs[0].status == dg.DagsterRunStatus.STARTED

            assert wait_for(started, 120), (
                f"the run did not start (command exit code {proc.poll()}); its output:\n"
                f"{log.read_text(errors='replace')[-3000:]}"
            )
            run_id = instance.get_runs(limit=1)[0].run_id
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.status == dg.DagsterRunStatus.CANCELED
            said = [e.message for e in instance.all_logs(run_id) if e.dagster_event is not None]
            assert any("an operator's stop" in m for m in said), said
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(timeout=10)
