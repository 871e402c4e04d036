"""`WorkerCheckingRunLauncher`: a run whose worker is killed with `kill -9` is failed by run monitoring.

The end-to-end test runs the real `dagster-daemon` with the project's dagster.yaml in a fresh DAGSTER_HOME
(run monitoring polling every 2 s instead of 20, so each failure comes within seconds) and a tiny code
location whose job waits on a file; it kills (a) a run worker the daemon launched and (b) a `dagster job
execute` command-line run, each with SIGKILL, and waits (generous deadline) for both runs to be FAILED with
the launcher's message. The unit tests check the pieces against this process's own `/proc`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.launcher import WorkerStatus

from kalshi_pipeline.executor import HEARTBEAT_TAG
from kalshi_pipeline.run_launcher import (
    WorkerCheckingRunLauncher,
    process_state,
    worker_on_this_host,
)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: A budget for each wait on a loaded 2-core machine (dagster.yaml's own 20 s poll would fit in it too).
FAIL_DEADLINE_S = 90
#: How often the test's run monitoring polls run workers (dagster.yaml: 20 s).
MONITORING_POLL_S = 2

SLEEPY = '''
import time

import dagster as dg


@dg.op
def wait() -> None:
    """Block for ten minutes (the test kills the worker long before)."""
    time.sleep(600)


@dg.job(executor_def=dg.in_process_executor)
def sleepy() -> None:
    wait()


defs = dg.Definitions(jobs=[sleepy])
'''


def test_process_state_of_this_process_and_of_a_dead_pid() -> None:
    mine = process_state(os.getpid())
    assert mine is not None and mine.alive and mine.started_at is not None
    assert mine.started_at <= time.time()
    # pid_max caps pids at 2**22; this one cannot exist.
    gone = process_state(2**22 + 1)
    assert gone is not None and not gone.alive


def test_process_state_without_proc_cannot_tell(tmp_path: Path) -> None:
    assert process_state(os.getpid(), proc=tmp_path) is None


@pytest.mark.parametrize(
    ("tags", "local_storage", "expected"),
    [
        ({}, True, True),
        ({}, False, False),
        ({".dagster/grpc_info": '{"host": "localhost", "port": 4000}'}, False, True),
        ({".dagster/grpc_info": '{"host": "localhost", "socket": "/tmp/x.sock"}'}, False, True),
        ({".dagster/grpc_info": '{"host": "code-server", "port": 4000}'}, True, False),
        ({".dagster/grpc_info": "not json"}, True, False),
    ],
)
def test_worker_on_this_host(tags: dict[str, str], local_storage: bool, expected: bool) -> None:
    run = dg.DagsterRun(job_name="j", run_id="r", tags=tags)
    assert worker_on_this_host(run, local_storage) is expected


@pytest.fixture
def launcher_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A local instance (SQLite storage, so run workers are on this host) with the project's launcher."""
    home = tmp_path / "launcher_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "run_launcher:\n  module: kalshi_pipeline.run_launcher\n  class: WorkerCheckingRunLauncher\n"
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_launcher, WorkerCheckingRunLauncher)
        yield instance


def _started_run(
    instance: dg.DagsterInstance, run_id: str, starts: list[tuple[int, float]], tags: dict[str, str]
) -> dg.DagsterRun:
    """Store a STARTED run whose workers wrote RUN_START events as (pid, Unix time), oldest first."""
    instance.run_storage.add_run(
        dg.DagsterRun(job_name="j", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags)
    )
    for pid, at in starts:
        start = DagsterEvent(DagsterEventType.RUN_START.value, job_name="j", pid=pid)
        instance.store_event(
            EventLogEntry(
                error_info=None,
                level=logging.DEBUG,
                user_message="",
                run_id=run_id,
                timestamp=at,
                dagster_event=start,
                job_name="j",
            )
        )
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run


def test_health_follows_the_newest_run_worker(launcher_instance: dg.DagsterInstance) -> None:
    """A launch cut short can leave a run to a second worker: the newest RUN_START is the one checked."""
    launcher = launcher_instance.run_launcher
    assert isinstance(launcher, WorkerCheckingRunLauncher)
    now = time.time()
    me, gone = os.getpid(), 2**22 + 1  # pid_max caps pids at 2**22: that one cannot exist.

    first_gone = _started_run(launcher_instance, "first-gone", [(gone, now), (me, now + 1)], {})
    health = launcher.check_run_worker_health(first_gone)
    assert health.status == WorkerStatus.RUNNING, health.msg

    newest_gone = _started_run(launcher_instance, "newest-gone", [(me, now), (gone, now + 1)], {})
    health = launcher.check_run_worker_health(newest_gone)
    assert health.status == WorkerStatus.FAILED
    assert f"run worker pid {gone} is gone" in (health.msg or "")


@pytest.mark.parametrize(
    ("beat_age_s", "expected"),
    [(None, WorkerStatus.FAILED), (5.0, WorkerStatus.RUNNING), (600.0, WorkerStatus.FAILED)],
)
def test_a_pid_that_seems_newer_than_its_run_is_settled_by_the_heartbeat(
    launcher_instance: dg.DagsterInstance, beat_age_s: float | None, expected: WorkerStatus
) -> None:
    """This process "started" after a run recorded an hour ago: a reused pid, or a stepped wall clock."""
    launcher = launcher_instance.run_launcher
    assert isinstance(launcher, WorkerCheckingRunLauncher)
    now = time.time()
    tags = {} if beat_age_s is None else {HEARTBEAT_TAG: str(now - beat_age_s)}
    run = _started_run(launcher_instance, "run", [(os.getpid(), now - 3600)], tags)
    health = launcher.check_run_worker_health(run)
    assert health.status == expected, health.msg
    if expected == WorkerStatus.FAILED:
        assert "now belongs to a process started after the run" in (health.msg or "")


@pytest.fixture
def code_location(tmp_path: Path) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml, and a workspace with the `sleepy` job."""
    home = tmp_path / "home"
    home.mkdir()
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = MONITORING_POLL_S
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    (tmp_path / "workspace.yaml").write_text(
        f"load_from:\n  - python_file:\n      relative_path: sleepy.py\n"
        f"      working_directory: {tmp_path}\n"
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_launcher, WorkerCheckingRunLauncher)
    return tmp_path


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}


@pytest.fixture
def start_daemon(code_location: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start `dagster-daemon run` on the code location (in its own process group); all are stopped after."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with open(code_location / "daemon.log", "ab") as log:
            proc = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", str(code_location / "workspace.yaml")],
                cwd=code_location,
                env=_env(code_location / "home"),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _wait_for(condition: Callable[[], object], deadline_s: float, what: str, log: Path) -> object:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(
        f"{what} within {deadline_s}s; daemon log tail:\n{log.read_text()[-3000:]}"
    )


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_START, limit=1
    ).records
    if not records or records[0].event_log_entry.dagster_event is None:
        return None
    return records[0].event_log_entry.dagster_event.pid


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus | None:
    run = instance.get_run_by_id(run_id)
    return None if run is None else run.status


def _wait_failed(
    instance: dg.DagsterInstance, run_id: str, pid: int, log: Path
) -> tuple[float, str]:
    began = time.monotonic()

    _wait_for(
        lambda: _status(instance, run_id) == dg.DagsterRunStatus.FAILURE,
        FAIL_DEADLINE_S,
        f"run {run_id} (worker {pid} killed) was not FAILED",
        log,
    )
    events = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
    return time.monotonic() - began, " ".join(e.message for e in events)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(4 * FAIL_DEADLINE_S + 120)
def test_killed_workers_runs_are_failed_by_the_daemon(
    code_location: Path, start_daemon: Callable[[], subprocess.Popen[bytes]]
) -> None:
    home = code_location / "home"
    env = _env(home)
    log = code_location / "daemon.log"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # (a) The campaign's case: kill -9 of the daemon's process group (daemon, code server and the run
        # worker it launched), then a fresh daemon. No code server is left to notice the dead worker.
        first = start_daemon()
        subprocess.run(
            [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "sleepy"],
            cwd=code_location,
            env=env,
            check=True,
            capture_output=True,
        )
        launched = instance.get_runs(limit=1)[0]
        pid = _wait_for(
            lambda: (
                _status(instance, launched.run_id) == dg.DagsterRunStatus.STARTED
                and _worker_pid(instance, launched.run_id)
            ),
            FAIL_DEADLINE_S,
            "the launched run did not start",
            log,
        )
        assert isinstance(pid, int)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert _status(instance, launched.run_id) == dg.DagsterRunStatus.STARTED
        start_daemon()
        seconds, message = _wait_failed(instance, launched.run_id, pid, log)
        assert f"run worker pid {pid} is gone" in message
        print(f"failed {seconds:.1f}s after the kill")
        assert seconds < FAIL_DEADLINE_S

        # (b) A command-line run: its RUN_START pid is the `dagster job execute` process itself.
        cli = subprocess.Popen(
            [str(BIN / "dagster"), "job", "execute", "-f", "sleepy.py", "-j", "sleepy"],
            cwd=code_location,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            # The instance may have retried run (a) meanwhile (run_retries): pick the run by its pid.
            # Killed only once its run reads STARTED: the command stores RUN_START, then the status, and
            # a kill between the two leaves a NOT_STARTED run (run monitoring's start timeout ends those).
            cli_runs = _wait_for(
                lambda: [
                    r.run_id
                    for r in instance.get_runs(limit=5)
                    if _worker_pid(instance, r.run_id) == cli.pid
                    and r.status == dg.DagsterRunStatus.STARTED
                ],
                FAIL_DEADLINE_S,
                "the command-line run did not start",
                log,
            )
            assert isinstance(cli_runs, list)
            cli.kill()
            cli.wait(timeout=10)
            seconds, message = _wait_failed(instance, cli_runs[0], cli.pid, log)
        finally:
            # Whatever the command left (Dagster's log tailers) goes with its session.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(cli.pid, signal.SIGKILL)
            if cli.poll() is None:
                cli.wait(timeout=10)
        assert f"run worker pid {cli.pid} is gone" in message
        print(f"failed {seconds:.1f}s after the kill")
        assert seconds < FAIL_DEADLINE_S
