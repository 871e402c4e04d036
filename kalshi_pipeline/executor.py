"""The run worker's heartbeat: the project's in-process executor stamps each run while it executes.

A run worker on another host (a code server reached over the network, a run started from a CLI elsewhere
against shared Postgres storage) cannot be checked by pid from the daemon's host. So every run executes
under `heartbeat_in_process_executor`, which is Dagster's in-process executor plus a thread that writes
the current time into the run's `kalshi/worker_heartbeat` tag every `HEARTBEAT_SECONDS`. Tags live in the
instance's run storage, which every host of a deployment shares; `WorkerCheckingRunLauncher` fails a
STARTED run whose heartbeat is older than `HEARTBEAT_STALE_SECONDS`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import dagster as dg
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    _core_in_process_executor_creation,
)
from dagster._core.events import DagsterEvent
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._core.executor.base import Executor

#: The run tag holding the worker's last heartbeat (Unix seconds, as text).
HEARTBEAT_TAG = "kalshi/worker_heartbeat"
#: How often a run worker writes its heartbeat.
HEARTBEAT_SECONDS = 15.0
#: A heartbeat older than this means the worker is gone (four missed beats: a busy worker still beats,
#: since the beat is a thread of its own and a write of one tag).
HEARTBEAT_STALE_SECONDS = 60.0


def heartbeat_age(run: dg.DagsterRun, now: float) -> float | None:
    """Seconds since the run's worker last wrote its heartbeat, or None when it never did."""
    raw = run.tags.get(HEARTBEAT_TAG)
    if raw is None:
        return None
    try:
        return max(0.0, now - float(raw))
    except ValueError:
        return None


class HeartbeatExecutor(Executor):
    """An executor that runs `inner` while a thread stamps the run's heartbeat tag every `every_s`."""

    def __init__(self, inner: Executor, every_s: float = HEARTBEAT_SECONDS) -> None:
        self.inner = inner
        self.every_s = every_s

    @property
    def retries(self) -> RetryMode:
        """The inner executor's retry mode."""
        return self.inner.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        """The inner executor's step dependency settings."""
        return self.inner.step_dependency_config

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        """Execute the plan with the inner executor, beating until it is done."""
        stop = threading.Event()
        instance, run_id = plan_context.instance, plan_context.run_id

        def beat() -> None:
            while True:
                # A storage hiccup must not end the run; the next beat writes again.
                with contextlib.suppress(Exception):
                    instance.add_run_tags(run_id, {HEARTBEAT_TAG: f"{time.time():.3f}"})
                if stop.wait(self.every_s):
                    return

        thread = threading.Thread(target=beat, name=f"heartbeat-{run_id[:8]}", daemon=True)
        thread.start()
        try:
            yield from self.inner.execute(plan_context, execution_plan)
        finally:
            stop.set()
            thread.join(timeout=5)


@dg.executor(name="in_process", config_schema=IN_PROC_CONFIG)
def heartbeat_in_process_executor(init_context: dg.InitExecutorContext) -> Executor:
    """Dagster's in-process executor, plus the run worker heartbeat that worker health checks read."""
    return HeartbeatExecutor(_core_in_process_executor_creation(init_context.executor_config))
