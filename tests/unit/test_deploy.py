"""deploy/ is checked without a cluster: every manifest against the Kubernetes schemas, and
every way of starting a role runs the same command as the Procfile."""

from __future__ import annotations

import configparser
import re
import shlex
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


ROLE_OF_UNIT = {
    "resourced-web.service": "web",
    "resourced-worker@.service": "worker",
    "resourced-worker-gpu.service": "worker_gpu",
    "resourced-flower.service": "flower",
}
ROLE_OF_CONTAINER = {"resourced-worker-cpu": "worker", "resourced-worker-gpu": "worker_gpu"}
OPTIONAL_TRAILING = {"--name"}  # per-node naming a supervisor may add after the Procfile's command


def procfile() -> dict[str, list[str]]:
    entries = {}
    for line in (DEPLOY.parent / "Procfile").read_text().splitlines():
        role, _, command = line.partition(":")
        entries[role.strip()] = shlex.split(command)
    return entries


def same_command(expected: list[str], actual: list[str]) -> bool:
    """The Procfile's words in order; a ${VAR:-default} word matches any value in its place,
    and only per-node options may follow."""
    if len(actual) < len(expected):
        return False
    for want, got in zip(expected, actual, strict=False):
        pattern = re.escape(want)
        pattern = re.sub(r"\\\$\\\{[^}]*\\\}", ".+", pattern)
        if not re.fullmatch(pattern, got):
            return False
    rest = actual[len(expected) :]
    return all(
        w in OPTIONAL_TRAILING or (i > 0 and rest[i - 1] in OPTIONAL_TRAILING) for i, w in enumerate(rest)
    )


def test_command_comparison_can_fail() -> None:
    web = procfile()["web"]
    assert same_command(web, [w.replace("${PORT:-8000}", "8080") for w in web])
    assert not same_command(web, ["python", *web[1:]])
    assert not same_command(procfile()["worker"], [*procfile()["worker"], "--gpu"])
    assert not same_command(procfile()["worker"], [*procfile()["worker"], "--gpu", "--name"])


@pytest.mark.parametrize("unit", sorted(ROLE_OF_UNIT))
def test_systemd_units_start_what_the_procfile_starts(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string((DEPLOY / "systemd" / unit).read_text())
    assert {"Unit", "Service", "Install"} <= set(parser.sections()), unit
    words = shlex.split(parser["Service"]["ExecStart"])
    words[0] = words[0].rsplit("/", 1)[-1]  # the virtualenv's bin/ holds the same programs
    expected = procfile()[ROLE_OF_UNIT[unit]]
    assert same_command(expected, words), (unit, words, expected)


def test_every_unit_is_checked() -> None:
    assert {p.name for p in (DEPLOY / "systemd").glob("*.service")} == set(ROLE_OF_UNIT)


def test_kubernetes_workers_start_what_the_procfile_starts() -> None:
    checked = 0
    for _, doc in documents():
        if doc["kind"] != "Deployment" or doc["metadata"]["name"] not in ROLE_OF_CONTAINER:
            continue
        container = doc["spec"]["template"]["spec"]["containers"][0]
        expected = procfile()[ROLE_OF_CONTAINER[doc["metadata"]["name"]]]
        assert same_command(expected, container["command"] + container.get("args", [])), doc["metadata"]
        checked += 1
    assert checked == len(ROLE_OF_CONTAINER)
