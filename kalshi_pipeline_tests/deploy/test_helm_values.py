"""deploy/helm/values.yaml: only keys the targeted chart accepts, no secret, the same queue as deploy/dagster.yaml.

The chart's key list (chart_1_13_keys.txt) is a small fixture derived from the chart's own values schema; see
its header for the source. The chart version is stated once in values.yaml's header and must match the
Dockerfile's Dagster version (the chart and `dagster` are released in lockstep).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kalshi_pipeline_tests.deploy.services import DAEMON_ENV, DEPLOY, ROOT

VALUES_PATH = DEPLOY / "helm" / "values.yaml"
CHART_KEYS = Path(__file__).with_name("chart_1_13_keys.txt")
SECRET_NAMES = ("KALSHI_API_KEY_ID", "KALSHI_PRIVATE_KEY", "KALSHI_WAREHOUSE_URL", "PASSWORD")


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    """deploy/helm/values.yaml, parsed."""
    loaded = yaml.safe_load(VALUES_PATH.read_text())
    assert isinstance(loaded, dict)
    return loaded


def key_paths(node: Any, prefix: str = "") -> Iterator[str]:
    """Every key path of a values tree (`a.b`, list items as `a[].b`); a leaf or empty container ends a path."""
    if isinstance(node, dict) and node:
        for key, child in node.items():
            yield from key_paths(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list) and any(isinstance(item, dict | list) for item in node):
        for item in node:
            yield from key_paths(item, f"{prefix}[]")
    else:
        yield prefix


def allowed(path: str, patterns: set[str]) -> bool:
    """Whether the chart accepts `path`: listed exactly, or below a listed `name.*`."""
    if path in patterns:
        return True
    return any(
        path == p[:-2] or path.startswith(p[:-2] + ".") or path.startswith(p[:-2] + "[]")
        for p in patterns
        if p.endswith(".*")
    )


def chart_patterns() -> set[str]:
    """The fixture's key patterns (comments and blank lines dropped)."""
    lines = (line.strip() for line in CHART_KEYS.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def test_every_key_exists_in_the_chart(values: dict[str, Any]) -> None:
    patterns = chart_patterns()
    paths = list(key_paths(values))
    assert len(paths) > 50
    unknown = [p for p in paths if not allowed(p, patterns)]
    assert not unknown, f"keys the chart does not accept: {unknown}"


def test_the_key_check_rejects_what_the_chart_rejects() -> None:
    patterns = chart_patterns()
    assert allowed(
        "runLauncher.config.k8sRunLauncher.runK8sConfig.containerConfig.resources", patterns
    )
    assert allowed("dagster-user-deployments.deployments[].env[].name", patterns)
    assert not allowed("runLauncher.config.k8sRunLauncher.runK8sConfig.containerConfigs", patterns)
    assert not allowed("dagsterDaemon.runCoordinator.config.queuedRunCoordinator.maxRuns", patterns)
    assert not allowed("dagsterDaemon.runMonitoring.maxRuntimeSecond", patterns)


def test_chart_version_matches_the_image() -> None:
    chart = re.search(r"chart `dagster/dagster` version (\d+\.\d+\.\d+)", VALUES_PATH.read_text())
    assert chart is not None, "values.yaml must state the chart version it targets"
    dockerfile = (ROOT / "Dockerfile").read_text()
    dagster = re.search(r"^ARG DAGSTER_VERSION=(\S+)$", dockerfile, flags=re.M)
    libs = re.search(r"^ARG DAGSTER_LIBS_VERSION=(\S+)$", dockerfile, flags=re.M)
    assert dagster is not None and libs is not None
    assert dagster.group(1) == chart.group(1)
    # dagster 1.N.P <-> libraries 0.(N+16).P
    major, minor, patch = (int(x) for x in chart.group(1).split("."))
    assert libs.group(1) == f"0.{minor + 16}.{patch}" and major == 1
    assert chart.group(1) in VALUES_PATH.read_text().split("--version", 1)[1].splitlines()[0]


def test_one_image_and_the_code_location(values: dict[str, Any]) -> None:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    images = {
        (d["image"]["repository"], d["image"]["tag"])
        for d in (values["dagsterWebserver"], values["dagsterDaemon"], deployment)
    }
    assert len(images) == 1
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "kalshi_pipeline.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False
    daemon_env = {e["name"]: e["value"] for e in values["dagsterDaemon"]["env"]}
    assert DAEMON_ENV.items() <= daemon_env.items()
    # Run pods (the deployment's env) record a range's per-partition materializations in batches.
    run_env = {e["name"]: e["value"] for e in deployment["env"]}
    assert int(run_env["DAGSTER_EVENT_BATCH_SIZE"]) > 0


def test_secrets_come_from_kubernetes_secrets_only(values: dict[str, Any]) -> None:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    plain_env = {e["name"] for e in deployment["env"]}
    assert not [n for n in plain_env if any(s in n for s in SECRET_NAMES)]
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    secret = {"name": "kalshi-pipeline-secrets"}
    assert secret in deployment["envSecrets"]
    assert secret in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    assert "PRIVATE KEY" not in VALUES_PATH.read_text()


def camel_to_snake(name: str) -> str:
    """`maxConcurrentRuns` -> `max_concurrent_runs`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def snake_keys(node: Any) -> Any:
    """A values subtree with its keys in the instance's snake_case (as the chart's template renders it)."""
    if isinstance(node, dict):
        return {
            camel_to_snake(k) if k != "applyLimitPerUniqueValue" else k: snake_keys(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [snake_keys(item) for item in node]
    return node


def test_same_queue_limits_and_housekeeping_as_deploy_dagster_yaml(values: dict[str, Any]) -> None:
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    daemon = values["dagsterDaemon"]
    queued = snake_keys(daemon["runCoordinator"]["config"]["queuedRunCoordinator"])
    expected = {k: v for k, v in instance["run_coordinator"]["config"].items() if k in queued}
    # Only the code-server retries differ: K8sRunLauncher does not go through the code server.
    assert set(instance["run_coordinator"]["config"]) - set(queued) == {
        "max_user_code_failure_retries",
        "user_code_failure_retry_delay",
    }
    assert queued == expected
    for section in ("sensors", "schedules", "backfills"):
        assert snake_keys(daemon[section]) == instance[section]
    assert snake_keys(daemon["runRetries"]) == instance["run_retries"]
    retention = values["retention"]
    assert snake_keys(retention["sensor"]) == instance["retention"]["sensor"]
    assert snake_keys(retention["schedule"]) == instance["retention"]["schedule"]
    assert values["telemetry"] == instance["telemetry"]
    monitoring = daemon["runMonitoring"]
    assert monitoring["enabled"] and monitoring["pollIntervalSeconds"] == 30
