"""Real parts, started as an operator would: redis-server, moto's S3 server over HTTP, and the
Procfile's web and worker entries with only the documented environment variables set."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
import requests

from scripts import devstack
from tasks.exports.spec import ExportResult
from tasks.exports.store import ExportJobStore
from tests.integration.tenancy_helpers import _db

BUCKETS = ("archive", "exports", "images")


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def redis_url(logs_dir: Path) -> Iterator[str]:
    with devstack.redis_server(logs_dir / "redis.log") as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint(logs_dir: Path) -> Iterator[str]:
    with devstack.moto_s3(logs_dir / "moto.log") as url:
        yield url


@pytest.fixture(scope="session")
def service_env(redis_url: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "RESOURCED_REDIS_URL": redis_url,
        "RESOURCED_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "RESOURCED_SECRET_KEY": "integration-secret-key-0123456789",
        "RESOURCED_ALLOWED_BUCKETS": ",".join(BUCKETS),
        "RESOURCED_IMGBED_BUCKET": "images",
        "RESOURCED_WORK_DIR": str(tmp_path_factory.mktemp("work")),
        "RESOURCED_CALLBACK_SECRET": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "RESOURCED_CALLBACK_ALLOWLIST": "127.0.0.1",
        "RESOURCED_RESTORE_POLL_S": "1",
        "RESOURCED_CALLBACK_BACKOFF": "0.2",
        "HOST": "127.0.0.1",
    }


@pytest.fixture(scope="session")
def s3(s3_endpoint: str) -> Any:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for bucket in BUCKETS:
        client.create_bucket(Bucket=bucket)
    return client


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@pytest.fixture(scope="session")
def web(service_env: dict[str, str], logs_dir: Path, s3: Any) -> Iterator[str]:
    port = devstack.free_port()
    log = logs_dir / "web.log"
    proc = devstack.start_procfile("web", {**service_env, "PORT": str(port)}, log)
    url = f"http://127.0.0.1:{port}"
    try:
        devstack.wait_http_ok(url + "/healthz", proc=proc)
    except Exception:
        devstack.stop(proc)
        raise RuntimeError("web did not start:\n" + _tail(log)) from None
    yield url
    devstack.stop(proc)


@pytest.fixture(scope="session")
def worker_metrics_port() -> int:
    return devstack.free_port()


@pytest.fixture(scope="session")
def worker(
    service_env: dict[str, str], logs_dir: Path, redis_url: str, s3: Any, worker_metrics_port: int
) -> Iterator[subprocess.Popen]:
    log = logs_dir / "worker.log"
    env = {**service_env, "RESOURCED_WORKER_METRICS_PORT": str(worker_metrics_port)}
    proc = devstack.start_procfile("worker", env, log)
    try:
        devstack.wait_workers(redis_url)
    except Exception:
        devstack.stop(proc)
        raise RuntimeError("worker did not start:\n" + _tail(log)) from None
    yield proc
    devstack.stop(proc, timeout_s=20)


@pytest.fixture(scope="session")
def session_id(service_env: dict[str, str]) -> str:
    """Issued by the `resourced` command, as an operator would."""
    return devstack.issue_session(service_env, "alice")


ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "resourced")  # the installed entry point, as a user runs it


def run_cli(web: str, session: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`resourced ARGS` as alice against `web`, importing this tree's CLI whatever checkout the
    installed entry point was installed from (PYTHONPATH comes first)."""
    env = {
        "RESOURCED_URL": web,
        "RESOURCED_SESSION": session,
        "RESOURCED_USER": "alice",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def poll_export(web: str, body: dict[str, Any], timeout_s: float = 90) -> tuple[int, dict[str, Any]]:
    """Send the same request until it stops answering 1, honouring TimeWait (capped for tests)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = requests.post(f"{web}/resource/v1/i/export-to-s3dir", json=body, timeout=10)
        answer = response.json()
        if answer["ErrorCode"] not in (1, 8) or time.monotonic() > deadline:
            return response.status_code, answer
        time.sleep(min(float(answer.get("TimeWait", 1)), 0.3))


@pytest.fixture(scope="module")
def web_only(service_env: dict[str, str], logs_dir: Path, s3: Any) -> Iterator[str]:
    """The Procfile's web alone, small per-user limits: restore jobs stay 'restoring'."""
    env = {
        **service_env,
        "RESOURCED_REDIS_URL": _db(service_env["RESOURCED_REDIS_URL"], 2),
        "RESOURCED_RESTORE_MAX_ACTIVE_PER_USER": "2",
        "RESOURCED_RESTORE_MAX_FILES_PER_JOB": "5",
        "RESOURCED_TEST_CALLBACK_PER_MINUTE": "2",
    }
    with devstack.service(env, logs_dir, tag="tenancy-web", workers=0) as url:
        yield url


QUIET_HOLD_S = 25  # the longest hold allowed: held polls outlast what the tests do meanwhile


@pytest.fixture(scope="session")
def quiet_web(service_env: dict[str, str], logs_dir: Path) -> Iterator[tuple[str, redis.Redis]]:
    """The Procfile's web on a Redis database of its own where no worker runs: jobs stay queued."""
    url = service_env["RESOURCED_REDIS_URL"].rsplit("/", 1)[0] + "/7"
    port = devstack.free_port()
    env = {
        **service_env,
        "RESOURCED_REDIS_URL": url,
        "RESOURCED_LONG_POLL_S": str(QUIET_HOLD_S),
        "PORT": str(port),
    }
    proc = devstack.start_procfile("web", env, logs_dir / "web-quiet.log")
    try:
        devstack.wait_http_ok(f"http://127.0.0.1:{port}/healthz", proc=proc)
        yield f"http://127.0.0.1:{port}", redis.Redis.from_url(url)
    finally:
        devstack.stop(proc)


def finish_job(jobs: ExportJobStore, job_id: str) -> None:
    """Ends a job as ready, exactly as a worker does once the clip is uploaded."""
    record = jobs.get(job_id)
    assert record is not None
    spec, dest = record.spec, record.spec.destination
    result = ExportResult(
        dest.bucket,
        dest.region,
        dest.prefix,
        spec.video_key,
        spec.image_key,
        "v1",
        spec.duration_ms,
        0,
        1,
        "h264",
    )
    assert jobs.finish(job_id, record.token, result)


def held_polls(base: str) -> float:
    """Polls the web holds open now, summed over its processes, from its /metrics."""
    for line in requests.get(base + "/metrics", timeout=10).text.splitlines():
        if line.startswith("resourced_held_polls "):
            return float(line.split()[1])
    return 0.0
