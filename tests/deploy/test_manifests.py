"""The deployment files are consistent with the code they deploy."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from parley.kit.metrics import REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _k8s() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        out += _docs(f"k8s/{path.name}")
    return out


def _metric_names() -> set[str]:
    names: set[str] = set()
    for metric in REGISTRY.collect():
        names.add(metric.name)
        names.update(s.name for s in metric.samples)
    for m in list(names):
        names.update({m + "_total", m + "_bucket", m + "_sum", m + "_count"})
    return names


def test_every_yaml_parses() -> None:
    files = list(DEPLOY.rglob("*.yaml")) + list(DEPLOY.rglob("*.yml"))
    assert len(files) >= 12
    for path in files:
        assert list(yaml.safe_load_all(path.read_text())), path


def test_deployments_probe_run_unprivileged_and_are_bounded() -> None:
    deployments = {d["metadata"]["name"]: d for d in _k8s() if d["kind"] == "Deployment"}
    assert set(deployments) == {"parley-api", "parley-worker"}
    for name, dep in deployments.items():
        spec = dep["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"]:
            assert c["resources"]["limits"]["memory"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            if name == "parley-api":
                assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
                assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("kind", ["HorizontalPodAutoscaler", "PodDisruptionBudget"])
def test_autoscalers_and_budgets_target_real_deployments(kind: str) -> None:
    docs = _k8s()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 2
    for d in found:
        if kind == "HorizontalPodAutoscaler":
            assert d["spec"]["scaleTargetRef"]["name"] in deployments
        else:
            labels = d["spec"]["selector"]["matchLabels"]
            assert any(
                labels.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
                for dep in deployments.values()
            )


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = set(_docs("k8s/kustomization.yaml")[0]["resources"])
    present = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {
        "kustomization.yaml",
        "secret.example.yaml",
    }
    assert listed == present


def test_compose_app_connects_as_the_unprivileged_role() -> None:
    compose = _docs("compose.yaml")[0]
    env = compose["services"]["migrate"]["environment"]
    assert "parley_app:" in env["DATABASE_URL"]
    assert "parley_owner:" in env["DATABASE_MIGRATION_URL"]
    init = (DEPLOY / "postgres-init.sql").read_text()
    assert re.search(r"CREATE ROLE parley_app .*NOSUPERUSER NOBYPASSRLS", init)
    assert "PARLEY_WORKER_IN_PROCESS" in compose["services"]["api"]["environment"]


def test_dockerfile_runs_unprivileged_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users
    assert users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text
    assert "/healthz" in text


def test_alerts_and_dashboard_use_real_metrics() -> None:
    known = _metric_names()
    exprs = [r["expr"] for g in _docs("prometheus/alerts.yml")[0]["groups"] for r in g["rules"]]
    dash = json.loads((DEPLOY / "grafana" / "parley-dashboard.json").read_text())
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bparley_[a-z_]+", e)}
    assert used
    assert used <= known, used - known


def test_systemd_units_use_the_env_file_and_real_commands() -> None:
    for unit in ("parley-api", "parley-worker", "parley-migrate"):
        text = (DEPLOY / "systemd" / f"{unit}.service").read_text()
        assert "EnvironmentFile=/etc/parley/parley.env" in text
        assert re.search(r"ExecStart=\S+/parley (serve|worker|migrate)", text)
        assert "NoNewPrivileges=true" in text
