"""The Kubernetes Job the chart's K8sRunLauncher creates for our runs, built from deploy/helm/values.yaml.

No cluster: the launcher is dagster-k8s's own `K8sRunLauncher`, configured from the values the way the
chart's instance template renders `runLauncher.config.k8sRunLauncher` (helm/dagster/templates/helpers/
instance/_run-launcher.tpl in dagster-io/dagster), with a stand-in for the Kubernetes batch API that keeps
the Job body instead of sending it. The code location is loaded with the image and the container context
the chart gives the user deployment (`DAGSTER_CURRENT_IMAGE`, and with `includeConfigInLaunchedRuns` its
env, env secrets and namespace). The Job is validated with `kubernetes-validate` against the schemas of
Kubernetes 1.33 and 1.37, strictly (no unknown field), and checked for image, command, secrets, resources
and labels.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster._config import process_config
from dagster._core.launcher import LaunchRunContext
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_k8s import K8sRunLauncher

from kalshi_pipeline_tests.deploy.services import DEPLOY, ROOT

pytestmark = pytest.mark.integration  # loads the code location (seconds), though offline

RELEASE = "kalshi"
NAMESPACE = "kalshi"
#: The chart's resource names for release `kalshi` of chart `dagster` (its `dagster.fullname` helper).
FULLNAME = f"{RELEASE}-dagster"
K8S_VERSIONS = ("1.33.0", "1.37.0")
K8S_CONFIG_TAG = "dagster-k8s/config"
SECRET_ENV = (
    "KALSHI_API_KEY_ID",
    "KALSHI_PRIVATE_KEY",
    "KALSHI_WAREHOUSE_URL",
    "DAGSTER_PG_PASSWORD",
)


class CapturingBatchApi:
    """The part of `kubernetes.client.BatchV1Api` the launcher calls to create a Job; keeps the bodies."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, Any]] = []

    def create_namespaced_job(self, body: Any, namespace: str, **_: Any) -> Any:
        """Keep the Job instead of sending it to a cluster."""
        self.jobs.append((namespace, body))
        return body


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    """deploy/helm/values.yaml, parsed."""
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def launcher_config(values: Mapping[str, Any], kubeconfig: Path) -> dict[str, Any]:
    """The K8sRunLauncher config the chart renders into the instance ConfigMap from these values.

    The one deviation: the chart loads the in-cluster config, which does not exist here, so a kubeconfig
    file (never contacted) stands in.
    """
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s = k8s.get("runK8sConfig", {})
    keys = {
        "containerConfig": "container_config",
        "podSpecConfig": "pod_spec_config",
        "podTemplateSpecMetadata": "pod_template_spec_metadata",
        "jobSpecConfig": "job_spec_config",
        "jobMetadata": "job_metadata",
    }
    config = {
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
        "job_namespace": k8s.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": values["global"]["serviceAccountName"],
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{FULLNAME}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "env_config_maps": [f"{FULLNAME}-pipeline-env"] + [c["name"] for c in k8s["envConfigMaps"]],
        "env_secrets": [s["name"] for s in k8s["envSecrets"]],
        "env_vars": list(k8s["envVars"]),
        "volume_mounts": list(k8s["volumeMounts"]),
        "volumes": list(k8s["volumes"]),
        "labels": dict(k8s.get("labels", {})),
        "fail_pod_on_run_failure": k8s["failPodOnRunFailure"],
        "run_k8s_config": {keys[k]: v for k, v in run_k8s.items()},
    }
    result = process_config(K8sRunLauncher.config_type(), config)
    assert result.success, result.errors
    return config


def container_context(values: Mapping[str, Any]) -> dict[str, Any]:
    """What the chart hands the code server for its runs with `includeConfigInLaunchedRuns` enabled."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return {
        "k8s": {
            "namespace": NAMESPACE,
            "env": [{"name": e["name"], "value": e["value"]} for e in deployment["env"]],
            "env_secrets": [s["name"] for s in deployment["envSecrets"]],
        }
    }


def image_of(values: Mapping[str, Any]) -> str:
    """The user deployment's image reference."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return f"{deployment['image']['repository']}:{deployment['image']['tag']}"


@pytest.fixture(scope="module")
def k8s_launch(
    values: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[K8sRunLauncher, CapturingBatchApi, Any, dg.DagsterInstance]]:
    """(launcher, captured API, the code location's repository, instance) for building Jobs."""
    tmp = tmp_path_factory.mktemp("k8s")
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    batch = CapturingBatchApi()
    launcher = K8sRunLauncher(
        **launcher_config(values, kubeconfig),
        k8s_client_batch_api=batch,
        k8s_client_core_api=object(),
    )
    origin = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name="kalshi_pipeline.definitions",
            working_directory=str(ROOT),
        ),
        container_image=image_of(values),
        container_context=container_context(values),
        location_name="kalshi-pipeline",
    )
    home = tmp / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        launcher.register_instance(instance)
        with origin.create_location(instance) as location:
            (repo,) = location.get_repositories().values()
            yield launcher, batch, repo, instance


def build_job(
    k8s_launch: tuple[K8sRunLauncher, CapturingBatchApi, Any, dg.DagsterInstance],
    job_name: str,
    tags: Mapping[str, str],
) -> tuple[dict[str, Any], dg.DagsterRun]:
    """Create a run of `job_name` as the daemon would and let the launcher build its Job (as a dict)."""
    launcher, batch, repo, instance = k8s_launch
    remote_job = repo.get_full_job(job_name)
    run = instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config=None,
        resolved_op_selection=None,
        step_keys_to_execute=None,
        status=None,
        tags={**remote_job.run_tags, **tags},
        root_run_id=None,
        parent_run_id=None,
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=None,
        parent_job_snapshot=None,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        op_selection=None,
        asset_graph=repo.asset_graph,
    )
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    namespace, body = batch.jobs[-1]
    assert namespace == NAMESPACE
    job = kubernetes.client.ApiClient().sanitize_for_serialization(body)
    assert isinstance(job, dict)
    return job, run


def validate(job: dict[str, Any]) -> None:
    """Validate a manifest against Kubernetes' own schemas, rejecting unknown fields."""
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(job, version, strict=True)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base`, recursively for mappings (how dagster-k8s merges run config layers)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def expected_container_config(values: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, Any]:
    """The values' default container config with a run's `dagster-k8s/config` tag over it."""
    default = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"]
    tag = json.loads(tags[K8S_CONFIG_TAG]) if K8S_CONFIG_TAG in tags else {}
    return deep_merge(default, tag.get("container_config", {}))


def test_backfill_run_job_validates_with_secrets_from_secrets_only(
    values: dict[str, Any], k8s_launch: Any
) -> None:
    job, run = build_job(k8s_launch, "kalshi_sweep_job", {"dagster/partition": "2026-01-29"})
    validate(job)
    assert job["kind"] == "Job" and job["apiVersion"] == "batch/v1"

    spec = job["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    # Image and command: the user deployment's image, running this one run.
    assert container["image"] == image_of(values)
    assert container["args"][:3] == ["dagster", "api", "execute_run"]
    assert run.run_id in container["args"][3]
    assert pod["serviceAccountName"] == values["global"]["serviceAccountName"]

    # Secrets only by reference: the Kalshi keys and the warehouse URL from the Kubernetes secret, the
    # instance's password from the chart's Postgres secret; no secret variable carries a literal value.
    env = {e["name"]: e for e in container["env"]}
    assert not [n for n in SECRET_ENV if n in env and "value" in env[n]]
    pg_password = env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert pg_password["name"] == values["global"]["postgresqlSecretName"]
    env_from = container["envFrom"]
    assert {"secretRef": {"name": "kalshi-pipeline-secrets"}} in env_from
    assert {"configMapRef": {"name": f"{FULLNAME}-pipeline-env"}} in env_from
    assert all("PRIVATE KEY" not in json.dumps(e) for e in container["env"])
    assert env["KALSHI_LIVE_MODE"]["value"] == "websocket"

    # Resources and hardening from runK8sConfig (this job has no dagster-k8s/config tag of its own
    # unless the code gives it one, which then takes precedence).
    expected = expected_container_config(values, run.tags)
    assert container["resources"] == expected["resources"]
    assert (
        container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    )
    assert container["securityContext"] == expected["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] == 3600

    # Labels: Dagster's run labels and the values' own, on the Job and its pod.
    for labels in (job["metadata"]["labels"], spec["template"]["metadata"]["labels"]):
        assert labels["dagster/job"] == "kalshi_sweep_job"
        assert labels["dagster/run-id"] == run.run_id
        assert labels["dagster/code-location"] == "kalshi-pipeline"
        assert labels["app.kubernetes.io/component"] == "run_worker"
        assert labels["app.kubernetes.io/part-of"] == "kalshi-pipeline"


def test_a_jobs_k8s_config_tag_sets_its_own_requests(
    values: dict[str, Any], k8s_launch: Any
) -> None:
    # The stream run of one game date: long-lived, mostly waiting on the socket (see deploy/README.md).
    stream_requests = {
        "container_config": {
            "resources": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"memory": "512Mi"},
            }
        }
    }
    job, run = build_job(
        k8s_launch, "kalshi_stream_job", {K8S_CONFIG_TAG: json.dumps(stream_requests)}
    )
    validate(job)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == expected_container_config(values, run.tags)["resources"]
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    # The defaults the tag does not mention still apply.
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_validation_rejects_a_broken_job(k8s_launch: Any) -> None:
    job, _ = build_job(k8s_launch, "kalshi_discovery_job", {"dagster/partition": "2026-01-29"})
    validate(job)
    unknown_field = json.loads(json.dumps(job))
    unknown_field["spec"]["template"]["spec"]["containers"][0]["resource"] = {"requests": {}}
    wrong_type = json.loads(json.dumps(job))
    wrong_type["spec"]["backoffLimit"] = "none"
    for broken in (unknown_field, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(broken)
