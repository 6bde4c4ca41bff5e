"""The Kubernetes manifests in deploy/: valid against the API schemas (offline, with
kubernetes-validate's bundled schemas), consistent with each other and with the
gateway (its config parses, probes hit real routes, every secret is a real setting)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
K8S_VERSION = "1.33.0"


def _resources() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    return docs


def _one(kind: str) -> dict[str, Any]:
    [found] = [r for r in _resources() if r["kind"] == kind]
    return found


@pytest.mark.parametrize("resource", _resources(), ids=lambda r: f"{r['kind']}")
def test_each_manifest_is_valid_against_the_kubernetes_schema(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_the_deployment_uses_the_configmap_secret_and_probes() -> None:
    deployment = _one("Deployment")
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert deployment["spec"]["replicas"] >= 2
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["envFrom"][0]["secretRef"]["name"] == _one("Secret")["metadata"]["name"]
    [config] = [v for v in spec["volumes"] if "configMap" in v]
    assert config["configMap"]["name"] == _one("ConfigMap")["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == config["name"])
    assert f"{mount['mountPath']}/gateway.toml" in container["args"]
    selector = _one("Service")["spec"]["selector"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_config_and_secret_are_settings_the_gateway_accepts() -> None:
    data = tomllib.loads(_one("ConfigMap")["data"]["gateway.toml"])
    Settings(**{**data.pop("gateway"), **data})
    for name in _one("Secret")["stringData"]:
        assert name.startswith(("GATEWAY_", "KIMI_", "OPENAI_", "ANTHROPIC_"))
        if name.startswith("GATEWAY_"):
            assert name.removeprefix("GATEWAY_").lower() in Settings.model_fields
