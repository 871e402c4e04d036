"""The project's run executor: Dagster's in-process executor, plus a heartbeat and stops that read as stops.

Every job runs on `run_executor` (the steps of a run are sequential; the multiprocess executor would spend
10+ s starting a process per step). It adds two things to Dagster's in-process executor:

- **A heartbeat.** A run worker on another host (a code server reached over the network, a run started from
  a CLI elsewhere against shared Postgres storage) cannot be checked by pid from the daemon's host, so a
  thread writes the current time into the run's `kalshi/worker_heartbeat` tag every `HEARTBEAT_SECONDS`.
  Tags live in the instance's run storage, which every host of a deployment shares;
  `WorkerCheckingRunLauncher` fails a STARTED run whose heartbeat is older than `HEARTBEAT_STALE_SECONDS`.
- **An operator's stop is a cancellation.** SIGTERM or SIGINT to the run worker (stopping `make dev`, a
  deploy replacing a pod) interrupts the run; Dagster would record that as a FAILURE ("interrupted
  unexpectedly"). The run is marked CANCELING first, so it ends CANCELED, unless run monitoring is about
  to resume it (a lost Kubernetes pod) or it already failed.
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
from dagster._core.errors import DagsterExecutionInterruptedError
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


#: Run statuses an interrupt leaves as they are.
_SETTLED = (
    dg.DagsterRunStatus.CANCELING,
    dg.DagsterRunStatus.CANCELED,
    dg.DagsterRunStatus.FAILURE,
)


class HeartbeatExecutor(Executor):
    """Runs `inner` while a thread stamps the run's heartbeat tag every `every_s`; a signal cancels."""

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
        """Execute the plan with the inner executor, beating until it is done; a signal cancels the run."""
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
        except (KeyboardInterrupt, DagsterExecutionInterruptedError):
            run = instance.get_run_by_id(run_id)
            if (
                run is not None
                and run.status not in _SETTLED
                and not instance.run_will_resume(run_id)
            ):
                instance.report_run_canceling(
                    run, message="Run stopped by a signal to its process (an operator's stop)."
                )
            raise
        finally:
            stop.set()
            thread.join(timeout=5)


@dg.executor(name="in_process", config_schema=IN_PROC_CONFIG)
def run_executor(init_context: dg.InitExecutorContext) -> Executor:
    """Dagster's in-process executor, plus the worker heartbeat and operator stops as cancellations."""
    return HeartbeatExecutor(_core_in_process_executor_creation(init_context.executor_config))
