"""`WorkerCheckingRunLauncher`: Dagster's default run launcher plus a health check of each run's worker.

Dagster's run monitoring (the daemon's `run_monitoring` block) only fails a run whose worker died when the
run launcher can check worker health, and the default launcher cannot: a run worker killed with `kill -9`
(or an out-of-memory kill, or a killed `dagster asset materialize`) leaves its run STARTED until the
6-hour max runtime, and the live sensor skips that game date the whole time. This launcher launches runs
exactly like `DefaultRunLauncher` and answers the health check from the worker's process id, which the
run's newest `RUN_START` event records (the run worker a code server started, or the CLI process itself):

- the process is gone or a zombie: FAILED;
- its pid now belongs to a process started after the run: FAILED, unless the run's heartbeat is fresh (a
  process's start time is read from the host's boot time, which moves when the wall clock is stepped);
- the process exists: RUNNING;
- the worker may run on another host (a code server reached over the network, or a command-line run
  recorded in shared Postgres storage), or this host has no `/proc`: the run's heartbeat decides (see
  `kalshi_pipeline.executor`: every run of this project stamps a tag every 15 s while it executes):
  older than 60 s is FAILED, fresh is RUNNING, and a run that never beat (another executor, or not
  started yet) is RUNNING and keeps the max-runtime limit.

Configure it in `dagster.yaml` (module `kalshi_pipeline.run_launcher`); run monitoring then fails a dead
worker's run within `run_monitoring.poll_interval_seconds` and the sensor carries on with the next tick.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.launcher import (
    CheckRunHealthResult,
    WorkerStatus,
)
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.tags import GRPC_INFO_TAG

from kalshi_pipeline.executor import HEARTBEAT_STALE_SECONDS, heartbeat_age

#: Code-server hosts that are this machine (the default launcher's gRPC client names one of these, or a
#: unix socket, when the code server runs beside the daemon).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessState:
    """What `/proc` says about one pid: whether it runs, and when it started (Unix seconds)."""

    alive: bool
    started_at: float | None = None


def process_state(pid: int, proc: Path = PROC) -> ProcessState | None:
    """Return the state of `pid` on this host, or None when this host has no `/proc` to ask.

    A zombie (killed, not yet reaped by its parent) counts as gone: it runs no code and holds no socket.
    """
    if not (proc / "stat").exists():
        return None
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ProcessState(alive=False)
    except PermissionError:
        return ProcessState(alive=True)
    # Fields after the command name, which is in parentheses and may itself contain spaces or ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return ProcessState(alive=False)
    return ProcessState(alive=True, started_at=_boot_time(proc) + int(fields[19]) / _clock_ticks())


def _boot_time(proc: Path) -> float:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def worker_on_this_host(run: dg.DagsterRun, local_storage: bool) -> bool:
    """Return whether the run's worker ran on this host, so its pid can be checked here.

    A run the daemon launched names its code server in a tag: a local address or a unix socket means this
    host. A run without that tag was started by the CLI (`dagster asset materialize`); its worker is on
    this host when the instance's storage is local SQLite, which only processes of one host share.
    """
    raw = run.tags.get(GRPC_INFO_TAG)
    if raw is None:
        return local_storage
    try:
        info = json.loads(raw)
    except json.JSONDecodeError:
        return False
    if info.get("socket"):
        return True
    return str(info.get("host", "")).lower() in LOCAL_HOSTS


class WorkerCheckingRunLauncher(dg.DefaultRunLauncher):
    """`DefaultRunLauncher` whose `check_run_worker_health` fails runs whose worker process is gone."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        """Tell run monitoring to ask this launcher about each STARTED run's worker."""
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        """Return FAILED when the run's worker is gone (pid on this host, else heartbeat), else RUNNING."""
        local_storage = isinstance(self._instance.run_storage, SqliteRunStorage)
        if not worker_on_this_host(run, local_storage):
            return _by_heartbeat(run, "worker on another host")
        # The newest RUN_START: a launch cut short (its code server killed mid-launch) can leave the run to
        # a second worker while the first one has already exited.
        records = self._instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.RUN_START, limit=1, ascending=False
        ).records
        event = records[0].event_log_entry if records else None
        if event is None or event.dagster_event is None or event.dagster_event.pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START yet")
        pid = event.dagster_event.pid
        state = process_state(pid)
        if state is None:
            return _by_heartbeat(run, "no /proc on this host")
        if state.alive:
            # A pid reused by a process that started after the run is not the run's worker.
            if state.started_at is None or state.started_at <= event.timestamp + 1:
                return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive")
            age = heartbeat_age(run, time.time())
            if age is not None and age <= HEARTBEAT_STALE_SECONDS:
                return CheckRunHealthResult(
                    WorkerStatus.RUNNING,
                    f"pid {pid} seems to have started after the run, but the run's heartbeat is "
                    f"{age:.0f} s old",
                )
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"run worker pid {pid} now belongs to a process started after the run, and the run's "
                "heartbeat is stale or missing: the worker is gone and the run can no longer finish",
                run_worker_id=str(pid),
            )
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"run worker pid {pid} is gone (killed or crashed); the run can no longer finish",
            run_worker_id=str(pid),
        )


def _by_heartbeat(run: dg.DagsterRun, why: str) -> CheckRunHealthResult:
    """Judge a worker that cannot be checked by pid from its heartbeat tag."""
    age = heartbeat_age(run, time.time())
    if age is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"{why}; no heartbeat yet, not checked")
    if age <= HEARTBEAT_STALE_SECONDS:
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"{why}; heartbeat {age:.0f} s ago")
    return CheckRunHealthResult(
        WorkerStatus.FAILED,
        f"{why}; its last heartbeat was {age:.0f} s ago (over {HEARTBEAT_STALE_SECONDS:.0f} s): "
        "the run worker is gone and the run can no longer finish",
    )
