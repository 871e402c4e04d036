"""A fresh `make dev` session for a while, then what its Dagster UI reports: every check and every run.

    .venv/bin/python scripts/dev_soak.py [--minutes 15] [--ui-port 18500] [--sim-port 18501]
        [--ref HEAD] [--screenshots docs/screenshots]

It starts `make dev` on a fresh DAGSTER_HOME and DuckDB file under /tmp, lets it run, and asks the
webserver's GraphQL (what the UI reads) for every asset check execution and every run of the session,
counting passed and failed checks (a failed check with its metadata, so a failure can be verified against
the warehouse) and runs by status. It then stops `make dev` the way a person does (SIGTERM to make),
reads the final run statuses from the instance (the stream run must read CANCELED, not FAILURE), lists
any process of the session still alive, and writes `bench/results/dev_soak.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]

RUNS = """
query Runs($after: Float) {
  runsOrError(filter: {createdAfter: $after}, limit: 5000) {
    __typename
    ... on Runs { results { runId jobName status startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}
"""

CHECKS = """
query Checks {
  assetNodes {
    assetKey { path }
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
}
"""

EXECUTIONS = """
query Executions($key: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 10000) {
    runId status timestamp partition
    evaluation {
      success severity
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
    }
  }
}
"""

SENSOR_TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor {
      sensorState { ticks(limit: 10000) { status skipReason runIds timestamp } }
    }
  }
}
"""


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST one GraphQL query to the webserver and return its `data`, raising on errors."""
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=120
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def entry_value(entry: dict[str, Any]) -> Any:
    """The value of one GraphQL metadata entry, whatever its type."""
    for field in (
        "text",
        "intValue",
        "floatValue",
        "boolValue",
        "jsonString",
        "mdStr",
        "timestamp",
    ):
        if field in entry:
            return entry[field]
    return entry["__typename"]


def wait_for_webserver(url: str, make: subprocess.Popen[bytes], budget_s: float) -> None:
    """Wait until the webserver answers GraphQL and the code location is loaded."""
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        if make.poll() is not None:
            raise RuntimeError(f"make dev exited with {make.returncode} before the UI came up")
        try:
            data = graphql(url, CHECKS)
            if data["assetNodes"]:
                return
        except (httpx.HTTPError, RuntimeError):
            pass
        time.sleep(2)
    raise RuntimeError(f"the UI at {url} did not come up within {budget_s:.0f} s")


def check_report(url: str) -> dict[str, Any]:
    """Every asset check execution the UI knows, counted by status, with the failures in full."""
    by_status: Counter[str] = Counter()
    by_check: dict[str, Counter[str]] = {}
    failures: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for node in graphql(url, CHECKS)["assetNodes"]:
        key = node["assetKey"]["path"]
        for check in (node["assetChecksOrError"] or {}).get("checks", []):
            name = f"{'/'.join(key)}:{check['name']}"
            executions = graphql(url, EXECUTIONS, {"key": {"path": key}, "check": check["name"]})
            counts = by_check.setdefault(name, Counter())
            evaluated_runs = {
                e["runId"] for e in executions["assetCheckExecutions"] if e["evaluation"]
            }
            for execution in executions["assetCheckExecutions"]:
                evaluation = execution["evaluation"]
                status = execution["status"]
                counts[status] += 1
                by_status[status] += 1
                if status == "SKIPPED":
                    # The checks are not partitioned, only their asset: Dagster 1.13 records a planned
                    # execution per partition of the run and the evaluation without a partition, so
                    # each planned record reads SKIPPED beside its run's evaluation.
                    planned = execution["partition"] and execution["runId"] in evaluated_runs
                    skipped[
                        "planned_per_partition_of_an_evaluated_run" if planned else "other"
                    ] += 1
                if status == "FAILED" or (evaluation and not evaluation["success"]):
                    failures.append(
                        {
                            "check": name,
                            "partition": execution["partition"],
                            "run_id": execution["runId"],
                            "at": datetime.fromtimestamp(execution["timestamp"], UTC).isoformat(),
                            "severity": evaluation and evaluation["severity"],
                            "metadata": {
                                e["label"]: entry_value(e)
                                for e in (evaluation or {}).get("metadataEntries", [])
                            },
                        }
                    )
    return {
        "evaluated": by_status["SUCCEEDED"] + by_status["FAILED"],
        "passed": by_status["SUCCEEDED"],
        "failed_count": by_status["FAILED"],
        "executions_by_status": dict(by_status),
        "skipped": dict(skipped),
        "by_check": {name: dict(c) for name, c in sorted(by_check.items()) if c},
        "failed": failures,
    }


def run_report(url: str, since: float) -> dict[str, Any]:
    """Every run created since `since`, counted by job and status."""
    runs = graphql(url, RUNS, {"after": since})["runsOrError"]
    if runs["__typename"] != "Runs":
        raise RuntimeError(f"runsOrError: {runs}")
    by_status = Counter(r["status"] for r in runs["results"])
    by_job = Counter(f"{r['jobName']}:{r['status']}" for r in runs["results"])
    return {
        "total": len(runs["results"]),
        "by_status": dict(by_status),
        "by_job_and_status": dict(sorted(by_job.items())),
        "not_succeeded": [
            {"run_id": r["runId"], "job": r["jobName"], "status": r["status"]}
            for r in runs["results"]
            if r["status"] not in ("SUCCESS", "STARTED", "QUEUED", "STARTING")
        ],
    }


def sensor_report(url: str) -> dict[str, Any]:
    """The live sensor's ticks: how many, by status, and how many skipped ticks carry no reason."""
    selector = {
        "repositoryName": "__repository__",
        "repositoryLocationName": "kalshi_pipeline.definitions",
        "sensorName": "live_games_sensor",
    }
    sensor = graphql(url, SENSOR_TICKS, {"selector": selector})["sensorOrError"]
    ticks = (sensor.get("sensorState") or {}).get("ticks", [])
    skipped = [t for t in ticks if t["status"] == "SKIPPED"]
    return {
        "ticks": len(ticks),
        "by_status": dict(Counter(t["status"] for t in ticks)),
        "skipped_without_reason": sum(1 for t in skipped if not t["skipReason"]),
        "skip_reasons_sample": sorted({t["skipReason"] for t in skipped if t["skipReason"]})[:5],
    }


def final_run_statuses(home: Path, since: float, tree: Path) -> dict[str, Any]:
    """Run statuses read from the stopped instance itself (the webserver is gone by then)."""
    code = (
        "import collections, json, sys\n"
        "import dagster as dg\n"
        "instance = dg.DagsterInstance.get()\n"
        "runs = instance.get_run_records(dg.RunsFilter(created_after="
        "__import__('datetime').datetime.fromtimestamp(float(sys.argv[1]), "
        "__import__('datetime').UTC)))\n"
        "print(json.dumps({'by_job_and_status': dict(collections.Counter("
        "f'{r.dagster_run.job_name}:{r.dagster_run.status.value}' for r in runs))}))\n"
    )
    done = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-c", code, str(since)],
        env={**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def leftover_processes(home: Path, ports: tuple[int, int]) -> list[str]:
    """Processes of this session still alive: `pgrep -af dagster` and the simulator, by environment or port."""
    marks = (str(home), f"--port {ports[1]}", f"-p {ports[0]}")
    found = subprocess.run(
        ["pgrep", "-af", "dagster|kalshi-pipeline"], capture_output=True, text=True
    )
    lines: list[str] = []
    for line in found.stdout.splitlines():
        pid = line.split(" ", 1)[0]
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            environ = ""
        if f"DAGSTER_HOME={home}" in environ or any(m in line for m in marks):
            lines.append(line)
    return lines


def snapshot(ref: str, dest: Path) -> tuple[Path, str]:
    """Extract commit `ref` into `dest` (sharing the project's venv) and return it with the commit id.

    `make dev` runs there with the snapshot first on PYTHONPATH: every process it starts (code servers,
    run workers) imports that commit, not whatever the working tree holds at that moment.
    """
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", ref], capture_output=True, text=True, check=True
    ).stdout.strip()
    dest.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", commit], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    assert archive.wait() == 0, f"git archive {commit} failed"
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest, commit


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--ui-port", type=int, default=18500)
    parser.add_argument("--sim-port", type=int, default=18501)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dev_soak.json")
    parser.add_argument(
        "--ref",
        default="HEAD",
        help="commit to run (a snapshot of it, so edits in the working tree cannot change the run)",
    )
    parser.add_argument(
        "--screenshots",
        type=Path,
        default=None,
        help="before stopping, save the README's screenshots of the UI here (scripts/ui_screenshots.py)",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dev_soak_"))
    tree, commit = snapshot(args.ref, workdir / "tree")
    home = workdir / "home"
    warehouse = f"duckdb:///{workdir}/dev.duckdb"
    command = [
        "make",
        "-s",
        "-o",
        ".venv/.installed",
        "dev",
        f"DEV_HOME={home}",
        f"DEV_UI_PORT={args.ui_port}",
        f"DEV_SIM_PORT={args.sim_port}",
        f"DEV_WAREHOUSE_URL={warehouse}",
    ]
    url = f"http://127.0.0.1:{args.ui_port}"
    log = (workdir / "make_dev.log").open("wb")
    print(f"{shlex.join(command)}  (log: {log.name})", flush=True)
    started = time.time()
    make = subprocess.Popen(
        command,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    result: dict[str, Any] = {
        "command": f"{sys.executable} {' '.join(sys.argv)}",
        "make_command": shlex.join(command),
        "commit": commit,
        "started": datetime.fromtimestamp(started, UTC).isoformat(),
        "minutes": args.minutes,
    }
    try:
        wait_for_webserver(url, make, budget_s=300)
        result["ui_up_after_s"] = round(time.time() - started, 1)
        end = started + args.minutes * 60
        while time.time() < end:
            if make.poll() is not None:
                raise RuntimeError(f"make dev exited early with {make.returncode}")
            time.sleep(min(30.0, max(0.0, end - time.time())))
        result["checks"] = check_report(url)
        result["runs_before_stop"] = run_report(url, started)
        result["live_sensor"] = sensor_report(url)
        if args.screenshots is not None:
            shots = subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "ui_screenshots.py"), "--url", url,
                 "--out", str(args.screenshots)],
                capture_output=True,
                text=True,
            )  # fmt: skip
            result["screenshots"] = (shots.stdout + shots.stderr).strip().splitlines()[-8:]
    finally:
        stop_at = time.time()
        if make.poll() is None:
            os.kill(make.pid, signal.SIGTERM)
        try:
            make.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        result["stop_s"] = round(time.time() - stop_at, 1)
        result["make_exit_code"] = make.returncode
        time.sleep(2)
        result["leftover_processes"] = leftover_processes(home, (args.ui_port, args.sim_port))
    result["runs_after_stop"] = final_run_statuses(home, started, tree)
    result["workdir"] = str(workdir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    failed = result["checks"]["failed"]
    return 1 if failed or result["leftover_processes"] else 0


if __name__ == "__main__":
    sys.exit(main())
