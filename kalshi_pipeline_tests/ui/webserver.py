"""A real `dagster-webserver` (and, for live tests, `dagster-daemon`) over a test's own Dagster instance.

The UI is a page over the webserver's GraphQL: what these tests assert is what that GraphQL answers, from
a webserver process started exactly as `dagster dev` starts it, on a port of the UI tests' range
(18510-18549).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
LOCATION = "kalshi_pipeline.definitions"
#: Longest a webserver or daemon may take to load the code location on a loaded machine (a budget).
STARTUP_BUDGET_S = 240.0


class GraphQL:
    """A client of one webserver's GraphQL endpoint (the UI's data)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        """Run `query` and return its `data`; GraphQL errors raise with the server's message."""
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=120
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]


def metadata(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A GraphQL `metadataEntries` list as {label: value}, whatever each entry's type."""
    fields = ("text", "intValue", "floatValue", "boolValue", "jsonString", "mdStr", "timestamp")
    return {e["label"]: next((e[f] for f in fields if f in e), None) for e in entries}


#: The `metadataEntries` selection every query uses (the types this project's metadata has).
METADATA = """
metadataEntries {
  label __typename
  ... on TextMetadataEntry { text }
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on BoolMetadataEntry { boolValue }
  ... on JsonMetadataEntry { jsonString }
  ... on MarkdownMetadataEntry { mdStr }
  ... on TimestampMetadataEntry { timestamp }
}
"""


def instance_home(path: Path) -> Path:
    """A fresh DAGSTER_HOME at `path` with the project's dagster.yaml, as `make dev` sets one up."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    return path


@contextmanager
def dagster_process(
    args: list[str], home: Path, env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a `dagster-*` command in its own session over `home`; SIGTERM its whole group on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / args[0]), *args[1:]],
            cwd=home,
            env={**os.environ, **env, "DAGSTER_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 60.0) -> None:
    """SIGTERM the process group of `proc` (as Ctrl-C / a SIGTERM to `make dev` does), then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _group_alive(proc.pid):
        proc.poll()
        time.sleep(0.5)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in "ZX" and int(fields[2]) == pgid:
            return True
    return False


@contextmanager
def webserver(home: Path, port: int, env: Mapping[str, str], log: Path) -> Iterator[GraphQL]:
    """Start `dagster-webserver` on `port` over the instance at `home`; yield its GraphQL once loaded."""
    args = ["dagster-webserver", "-h", "127.0.0.1", "-p", str(port), "-m", LOCATION]
    with dagster_process(args, home, env, log) as proc:
        client = GraphQL(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + STARTUP_BUDGET_S
        while True:
            assert proc.poll() is None, f"the webserver exited: {log.read_text()[-2000:]}"
            try:
                nodes = client("{ assetNodes { id } }")["assetNodes"]
                if nodes:
                    break
            except (httpx.HTTPError, AssertionError):
                pass
            assert time.monotonic() < deadline, (
                f"the webserver did not load: {log.read_text()[-2000:]}"
            )
            time.sleep(1)
        yield client


def wait_until(what: str, condition: Any, budget_s: float, every_s: float = 2.0) -> Any:
    """Poll `condition()` until it returns something truthy, and return that; fail naming `what`."""
    deadline = time.monotonic() + budget_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {budget_s:.0f} s"
        time.sleep(every_s)
