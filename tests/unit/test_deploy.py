"""deploy/ is checked without a cluster: every manifest against the Kubernetes schemas, and
every way of starting a role runs the same command as the Procfile."""

from __future__ import annotations

import configparser
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))
K8S_VERSION = "1.30.0"


def documents() -> list[tuple[str, dict]]:
    found = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


@pytest.mark.parametrize(("name", "doc"), documents(), ids=[n for n, _ in documents()])
def test_manifest_matches_the_kubernetes_schema(name: str, doc: dict) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_roles_are_all_there() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in documents()}
    assert {
        ("Deployment", "resourced-api"),
        ("Service", "resourced-api"),
        ("Deployment", "resourced-worker-cpu"),
        ("Deployment", "resourced-worker-gpu"),
        ("Deployment", "resourced-flower"),
        ("HorizontalPodAutoscaler", "resourced-worker-cpu"),
        ("ConfigMap", "resourced-config"),
        ("Secret", "resourced-secrets"),
    } <= kinds


def test_systemd_units_parse_and_start_what_the_procfile_starts() -> None:
    procfile = (DEPLOY.parent / "Procfile").read_text()
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.read_string(unit.read_text())
        assert {"Unit", "Service", "Install"} <= set(parser.sections()), unit.name
        command = parser["Service"]["ExecStart"].split("/bin/", 1)[1]
        program = " ".join(command.split()[:3])
        assert program.split()[0] in procfile, (unit.name, program)
