"""Operating the service: health, readiness, metrics, request ids in worker logs, Flower."""

from __future__ import annotations

import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from scripts import devstack
from scripts.samples import SampleSpec, generate_recording
from tests.helpers import export_body, upload_recording
from tests.integration.conftest import poll_export

pytestmark = pytest.mark.integration
PDT_MS = 1_700_000_000_000


@pytest.fixture(scope="module")
def exported(web: str, worker: subprocess.Popen, session_id: str, s3: Any, tmp_path_factory: Any) -> str:
    """One export, sent with our own request id; returns that id."""
    upload_recording(
        s3, "archive", "live/ops", generate_recording(tmp_path_factory.mktemp("ops"), SampleSpec())
    )
    rid = f"ops-{uuid.uuid4().hex}"
    body = export_body(session_id, "alice", PDT_MS, 2000, LivePath="live/ops", FileName="ops")
    first = requests.post(
        f"{web}/resource/v1/i/export-to-s3dir", json=body, headers={"X-Request-Id": rid}, timeout=10
    )
    assert first.headers["X-Request-Id"] == rid
    assert poll_export(web, body)[1]["ErrorCode"] == 5
    return rid


def test_health_and_readiness(web: str) -> None:
    assert requests.get(f"{web}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{web}/readyz", timeout=5).json()
    assert ready["status"] == "ready" and ready["checks"] == {"redis": "ok", "broker": "ok"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition, by name and labels, as prometheus-client reads it."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in found, f"no sample {name}{labels}"
    return found[key]


def test_metrics_cover_requests_exports_and_queues(web: str, exported: str) -> None:
    found = samples(requests.get(f"{web}/metrics", timeout=5).text)
    # the first request of a short export is held and answered 5 (long polling)
    answered = {"code": "5", "endpoint": "/resource/v1/i/export-to-s3dir", "status": "200"}
    assert value(found, "resourced_http_requests_total", **answered) >= 1
    assert value(found, "resourced_exports_total", outcome="ready", type="copy") >= 1
    assert value(found, "resourced_export_bytes_total") > 10_000  # an MP4 of 2 s, not a header
    assert value(found, "resourced_export_seconds_count_total") >= 1
    assert value(found, "resourced_export_seconds_sum_total") > 0
    assert value(found, "resourced_timewait_error_count_total") >= 1
    assert value(found, "resourced_queue_depth", queue="export.copy") >= 0
    latency = [v for (n, _), v in found.items() if n == "resourced_http_request_seconds_count"]
    assert latency and sum(latency) >= 1


def test_request_id_follows_the_job_into_the_worker(exported: str, logs_dir: Path) -> None:
    lines = [line for line in (logs_dir / "worker.log").read_text().splitlines() if exported in line]
    assert any('"job_id": "' in line and '"job_id": ""' not in line for line in lines), lines[:3]


def test_flower_shows_tasks_without_secrets(
    service_env: dict[str, str], logs_dir: Path, exported: str, session_id: str
) -> None:
    port = devstack.free_port()
    env = {**service_env, "FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": "ops:flower-test-password"}
    flower = devstack.start_procfile("flower", env, logs_dir / "flower.log")
    auth = ("ops", "flower-test-password")
    try:
        devstack.wait_http_ok(f"http://127.0.0.1:{port}/healthcheck", timeout_s=30, proc=flower)
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 401  # operators only
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=10, auth=auth)
        assert page.status_code == 200 and "Flower" in page.text
        registered = requests.get(
            f"http://127.0.0.1:{port}/api/workers", params={"refresh": "1"}, timeout=30, auth=auth
        )
        names = {task for worker in registered.json().values() for task in worker.get("registered", [])}
        assert {"resourced.export", "resourced.restore.poll", "resourced.callback.deliver"} <= names
        assert session_id not in registered.text and "testing" not in registered.text  # no session, no keys
    finally:
        devstack.stop(flower)


def test_workers_serve_metrics_too(worker_metrics_port: int, exported: str) -> None:
    found = samples(requests.get(f"http://127.0.0.1:{worker_metrics_port}/metrics", timeout=5).text)
    assert sum(v for (n, _), v in found.items() if n == "resourced_worker_slots") >= 1
    encoders = {dict(lb)["encoder"]: v for (n, lb), v in found.items() if n == "resourced_worker_encoder"}
    assert encoders.get("libx264") == 1
    assert value(found, "resourced_exports_total", outcome="ready", type="copy") >= 1


def test_valid_polls_are_served_through_a_burst_of_bad_requests(
    web: str, session_id: str, exported: str
) -> None:
    """Functional, not timed (the benchmark measures latency): every valid poll gets its answer."""
    body = export_body(session_id, "alice", PDT_MS, 2000, LivePath="live/ops", FileName="ops")
    garbage = [
        b"{",
        b"[]",
        b'{"Duration": "x"}',
        b"\xff" * 1000,
        b'{"storage_info": "' + b"A" * 300_000 + b'"}',
    ]
    bad_answers: list[int] = []
    good_answers: list[int] = []

    def flood() -> None:
        with requests.Session() as http:
            for i in range(200):
                response = http.post(
                    f"{web}/resource/v1/i/export-to-s3dir",
                    data=garbage[i % len(garbage)],
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                bad_answers.append(response.status_code)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    with requests.Session() as http:
        for _ in range(50):
            response = http.post(f"{web}/resource/v1/i/export-to-s3dir", json=body, timeout=30)
            good_answers.append(response.json()["ErrorCode"])
    for thread in threads:
        thread.join()
    assert good_answers == [5] * 50
    assert len(bad_answers) == 800 and set(bad_answers) <= {400, 401, 413}
