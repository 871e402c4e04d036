"""The deployment's services as real processes: a gRPC code server, `dagster-webserver`, `dagster-daemon`.

`Deployment` starts each the way deploy/compose.yaml and the Helm chart do (one process per service, all
sharing the Postgres-backed instance of deploy/dagster.yaml and a workspace that points at the code server
by host and port), writes each one's output to a log file, and talks to the webserver over its GraphQL API
exactly as the UI does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from kalshi_pipeline_tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
LOCATION_NAME = "kalshi_pipeline"
#: What the daemon's environment adds in deploy/compose.yaml and deploy/helm/values.yaml: an asset backfill
#: evaluated while its code location cannot be loaded (a code server restarting) waits for the location
#: instead of failing and cancelling its runs.
DAEMON_ENV = {"DAGSTER_BACKFILL_RETRY_DEFINITION_CHANGED_ERROR": "1"}

T = TypeVar("T")

LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
  }
}
"""

LOCATION_STATUS = """
query LocationStatus {
  workspaceOrError {
    __typename
    ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename } } }
  }
}
"""

SENSOR_TICKS = """
query SensorTicks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { id sensorState { status ticks(limit: 200) { status timestamp } } }
  }
}
"""

STOP_SENSOR = """
mutation StopSensor($id: String) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}
"""


def wait_for(
    condition: Callable[[], T | None], timeout_s: float, what: str, on_timeout: Callable[[], str]
) -> T:
    """Poll `condition` until it returns something truthy; fail naming `what` after the deadline.

    `on_timeout` supplies the diagnostics (log tails) appended to the failure message.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:.0f}s\n{on_timeout()}")
        time.sleep(0.5)


@dataclass
class Service:
    """One long-running process of the deployment, in a process group of its own."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    #: Every process group this service ever led: a killed code server leaves its run workers behind.
    groups: list[int] = field(default_factory=list)

    def start(self) -> None:
        """Start the process (appending to its log)."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=dict(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.groups.append(self.proc.pid)

    @property
    def pid(self) -> int:
        """The pid of the running process."""
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def kill_hard(self) -> None:
        """`kill -9` the service's own process only (its children live on, as after a node failure)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the service and everything it started: SIGTERM to each of its groups, SIGKILL after 20 s."""
        for sig, wait_s in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            for group in self.groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, sig)
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=wait_s)
                except subprocess.TimeoutExpired:
                    continue
            if not any(_group_alive(g) for g in self.groups):
                return

    def log_size(self) -> int:
        """The log's current length in bytes (a mark for `log_since`)."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, mark: int) -> str:
        """What the service logged after `mark`."""
        with open(self.log_path, "rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace")

    def log_tail(self, chars: int = 2500) -> str:
        """The end of the service's log."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name} ({self.log_path}) ---\n{text[-chars:]}"


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def write_workspace(path: Path, host: str, port: int) -> None:
    """Write deploy/workspace.yaml with the code server's address replaced by `host:port`."""
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (server,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    server.update(host=host, port=port)
    assert server["location_name"] == LOCATION_NAME
    path.write_text(yaml.safe_dump(workspace))


class Deployment:
    """The code server, webserver and daemon of one Dagster deployment, started as separate processes."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.grpc_port = free_port()
        self.web_port = free_port()
        workspace = workdir / "workspace.yaml"
        write_workspace(workspace, "127.0.0.1", self.grpc_port)
        logs = workdir / "logs"
        logs.mkdir(exist_ok=True)
        self.code_server = Service(
            "code server",
            [
                str(BIN / "dagster"),
                *["api", "grpc", "-m", "kalshi_pipeline.definitions"],
                *["-h", "127.0.0.1", "-p", str(self.grpc_port)],
                *["--location-name", LOCATION_NAME],
            ],
            env,
            logs / "code_server.log",
        )
        self.webserver = Service(
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                *["-w", str(workspace), "-h", "127.0.0.1", "-p", str(self.web_port)],
            ],
            env,
            logs / "webserver.log",
        )
        self.daemon = Service(
            "daemon",
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            {**env, **DAEMON_ENV},
            logs / "daemon.log",
        )
        self.services = (self.code_server, self.webserver, self.daemon)
        self._http = httpx.Client(base_url=f"http://127.0.0.1:{self.web_port}", timeout=30)

    def start(self, *, stopped_sensors: Sequence[str] = (), timeout: float = 120.0) -> None:
        """Start the code server first (the others load the workspace from it), then the others.

        The `stopped_sensors` are stopped through the webserver, as in the UI, before the daemon starts,
        so the daemon never ticks them.
        """
        self.code_server.start()
        self.webserver.start()
        if stopped_sensors:
            wait_for(self.location_loaded, timeout, "the webserver loading the location", self.logs)
            for name in stopped_sensors:
                self.stop_sensor(name)
        self.daemon.start()

    def stop_sensor(self, sensor_name: str) -> None:
        """Stop a sensor as its page in the UI does."""
        sensor = self.graphql(SENSOR_TICKS, {"selector": self._sensor_selector(sensor_name)})
        found = sensor["sensorOrError"]
        assert found["__typename"] == "Sensor", f"sensor {sensor_name} not found: {found}"
        answer = self.graphql(STOP_SENSOR, {"id": found["id"]})["stopSensor"]
        assert answer["__typename"] == "StopSensorMutationResult", f"not stopped: {answer}"
        assert answer["instigationState"]["status"] == "STOPPED", answer

    def stop(self) -> None:
        """Stop every service and every process they started."""
        self._http.close()
        for service in reversed(self.services):
            service.stop()

    def logs(self) -> str:
        """Every service's log tail, for failure messages."""
        return "\n".join(service.log_tail() for service in self.services)

    def assert_running(self, *, except_for: Sequence[Service] = ()) -> None:
        """Fail with the logs if a service that should be running has exited."""
        for service in self.services:
            if service not in except_for:
                assert service.alive(), f"{service.name} exited\n{self.logs()}"

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST a GraphQL document to the webserver, as the UI does; return its `data`."""
        response = self._http.post("/graphql", json={"query": query, "variables": variables or {}})
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), f"GraphQL errors: {json.dumps(body['errors'])[:2000]}"
        return body["data"]

    def location_loaded(self) -> bool:
        """Whether the webserver is up and has loaded the code location from the code server."""
        try:
            data = self.graphql(LOCATION_STATUS)
        except httpx.HTTPError:
            return False
        entries = data["workspaceOrError"].get("locationEntries", [])
        return any(
            e["name"] == LOCATION_NAME
            and e["loadStatus"] == "LOADED"
            and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            for e in entries
        )

    def launch_asset_backfill(self, asset_keys: Sequence[str], partitions: Sequence[str]) -> str:
        """Launch an asset backfill of some partitions as the UI's Materialize dialog does; return its id."""
        params = {
            "assetSelection": [{"path": key.split("/")} for key in asset_keys],
            "partitionNames": list(partitions),
            "title": "deploy topology test",
        }
        answer = self.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        assert answer["__typename"] == "LaunchBackfillSuccess", f"backfill not launched: {answer}"
        return str(answer["backfillId"])

    def sensor_ticks(self, sensor_name: str) -> list[dict[str, Any]]:
        """The sensor's ticks as the UI's sensor page reads them (newest first)."""
        sensor = self.graphql(SENSOR_TICKS, {"selector": self._sensor_selector(sensor_name)})[
            "sensorOrError"
        ]
        assert sensor["__typename"] == "Sensor", f"sensor {sensor_name} not found: {sensor}"
        return list(sensor["sensorState"]["ticks"])

    @staticmethod
    def _sensor_selector(sensor_name: str) -> dict[str, str]:
        return {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": "__repository__",
            "sensorName": sensor_name,
        }
