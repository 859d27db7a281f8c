"""deploy/kubernetes/ as a cluster would read it: the config the pods get loads, the probes
hit the daemon's routes, the pods run locked down, and every reference resolves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from trigger_daemon.config import ENV_PREFIX, load_config
from trigger_daemon.triggers.files import load_yaml_triggers

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
SECRET_NAME = "trigger-daemon-credentials"


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def one(name: str, kind: str) -> dict[str, Any]:
    [found] = [doc for doc in documents(name) if doc["kind"] == kind]
    return found


def example_secret() -> dict[str, str]:
    secret = one("secret.example.yaml", "Secret")
    assert secret["metadata"]["name"] == SECRET_NAME
    data: dict[str, str] = secret["stringData"]
    return data


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment, secrets taken from the example Secret."""
    env = {}
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        elif "secretKeyRef" in variable["valueFrom"]:
            ref = variable["valueFrom"]["secretKeyRef"]
            assert ref["name"] == SECRET_NAME
            env[variable["name"]] = example_secret()[ref["key"]]
        else:
            env[variable["name"]] = "trigger-daemon-7d9c-abcde"  # a fieldRef: the pod name
    return env


def mount_config(
    pod: dict[str, Any], container: dict[str, Any], config_map: dict[str, Any], root: Path
) -> None:
    """Write the ConfigMap's items where the container's volume mount puts them."""
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for mount in container["volumeMounts"]:
        source = volumes[mount["name"]].get("configMap")
        if source is None:
            continue
        assert source["name"] == config_map["metadata"]["name"]
        for item in source["items"]:
            target = root / mount["mountPath"].lstrip("/") / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(config_map["data"][item["key"]])


def load_as_the_pod_would(
    pod: dict[str, Any],
    container: dict[str, Any],
    config_map: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    mount_config(pod, container, config_map, tmp_path)
    env = container_env(container)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config_path = tmp_path / env["TRIGGER_DAEMON_CONFIG"].lstrip("/")
    config = load_config(config_path)
    assert load_yaml_triggers(config)  # the triggers file is found and valid
    return config


def test_the_kustomization_names_files_that_exist() -> None:
    kustomization = one("kustomization.yaml", "Kustomization")
    for resource in kustomization["resources"]:
        assert (DEPLOY / resource).is_file(), resource
    assert "secret.example.yaml" not in kustomization["resources"]


def test_the_deployment_config_loads_with_postgresql_and_an_authenticated_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = one("deployment.yaml", "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]

    config = load_as_the_pod_would(
        pod, container, one("configmap.yaml", "ConfigMap"), tmp_path, monkeypatch
    )

    settings = config.settings
    assert settings.store.url.startswith("postgresql://")
    assert settings.api.host == "0.0.0.0"
    assert settings.api.auth.mode == "token"
    assert settings.kafka.client_id == "trigger-daemon-7d9c-abcde"
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace_seconds
    assert container["ports"][0]["containerPort"] == settings.api.port


def test_the_deployment_probes_health_and_readiness_and_runs_locked_down() -> None:
    deployment = one("deployment.yaml", "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]

    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    ports = {port["name"] for port in container["ports"]}
    assert {
        container[probe]["httpGet"]["port"] for probe in ("readinessProbe", "livenessProbe")
    } <= ports
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(container["resources"]) == {"requests", "limits"}
    assert deployment["spec"]["replicas"] >= 2


def test_the_service_and_the_disruption_budget_select_the_deployments_pods() -> None:
    labels = one("deployment.yaml", "Deployment")["spec"]["template"]["metadata"]["labels"]

    service = one("service.yaml", "Service")
    budget = one("poddisruptionbudget.yaml", "PodDisruptionBudget")

    assert service["spec"]["selector"].items() <= labels.items()
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_the_sidecar_example_config_loads_with_its_api_on_loopback_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = one("sidecar-example.yaml", "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [sidecar] = pod["initContainers"]

    config = load_as_the_pod_would(
        pod, sidecar, one("sidecar-example.yaml", "ConfigMap"), tmp_path, monkeypatch
    )

    assert sidecar["restartPolicy"] == "Always"
    assert config.settings.api.host == "127.0.0.1"
    assert config.settings.orchestration.base_url.startswith("http://127.0.0.1:")
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
