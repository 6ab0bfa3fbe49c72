"""Faults with real processes: a worker SIGKILLed mid-export, several workers sharing a burst.
This module runs its own Redis and web so it decides which workers exist."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from scripts import devstack
from scripts.samples import SampleSpec, generate_recording
from tests.helpers import export_body, upload_recording
from tests.integration.conftest import poll_export
from tests.integration.faultproxy import fault_proxy

pytestmark = pytest.mark.integration
PDT_MS = 1_700_000_000_000
FAST_FAILOVER = {
    "RESOURCED_HEARTBEAT_TTL": "3",
    "RESOURCED_REAP_STALE_S": "3",
    "RESOURCED_WORKER_CONCURRENCY": "1",
}


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], logs_dir: Path, s3: Any) -> Iterator[dict[str, str]]:
    with devstack.redis_server(logs_dir / "redis-reliability.log") as url:
        env = {**service_env, "RESOURCED_REDIS_URL": url, **FAST_FAILOVER}
        with devstack.service(env, logs_dir, "reliability", workers=0) as base:  # each test starts its own
            yield {**env, "WEB": base, "SESSION": devstack.issue_session(env, "alice")}


def start_worker(stack: dict[str, str], logs_dir: Path, name: str) -> subprocess.Popen:
    env = {k: v for k, v in stack.items() if k not in {"WEB", "SESSION"}}
    return devstack.start_procfile("worker", env, logs_dir / f"worker-{name}.log")


def job_hash(stack: dict[str, str], marker: str) -> dict[str, str]:
    client = redis.Redis.from_url(stack["RESOURCED_REDIS_URL"], decode_responses=True)
    for key in client.scan_iter("resourced:export:*"):
        if marker in (client.hget(key, "spec") or ""):
            return client.hgetall(key)
    return {}


def test_worker_killed_mid_export_is_replaced(
    stack: dict[str, str], logs_dir: Path, s3: Any, tmp_path: Path
) -> None:
    rec = generate_recording(tmp_path / "slow", SampleSpec(seconds=12, width=640, height=360, noise=True))
    upload_recording(s3, "archive", "live/slow", rec)
    first = start_worker(stack, logs_dir, "doomed")
    devstack.wait_workers(stack["RESOURCED_REDIS_URL"])
    body = export_body(
        stack["SESSION"], "alice", PDT_MS, 11_000, LivePath="live/slow", FileName="killed", export_type=2
    )
    requests.post(f"{stack['WEB']}/resource/v1/i/export-to-s3dir", json=body, timeout=10)
    devstack.wait_for(lambda: job_hash(stack, "killed.mp4").get("state") == "running", "job running", 30)
    os.killpg(first.pid, signal.SIGKILL)  # the whole worker: no chance to ack, abort or withdraw
    first.wait(10)
    second = start_worker(stack, logs_dir, "rescuer")
    try:
        status, answer = poll_export(stack["WEB"], body, timeout_s=120)
        assert (status, answer["ErrorCode"]) == (200, 5), answer
        record = job_hash(stack, "killed.mp4")
        assert record["attempt"] == "2"  # the reaper requeued it; the dead attempt's message is stale
        prefix = answer["S3Dir"] + "/"
        keys = sorted(
            o["Key"] for o in s3.list_objects_v2(Bucket="exports", Prefix=prefix).get("Contents", [])
        )
        assert keys == [prefix + "killed.jpg", prefix + "killed.mp4"]  # exactly one video
        uploads = s3.list_multipart_uploads(Bucket="exports", Prefix=prefix).get("Uploads", [])
        assert uploads == []  # the killed attempt's multipart upload was aborted
    finally:
        devstack.stop(second, 20)


def test_three_workers_share_a_burst_and_run_each_job_once(
    stack: dict[str, str], logs_dir: Path, s3: Any, tmp_path: Path
) -> None:
    upload_recording(
        s3, "archive", "live/burst", generate_recording(tmp_path / "burst", SampleSpec(seconds=6))
    )
    workers = [start_worker(stack, logs_dir, f"burst{i}") for i in range(3)]
    try:
        devstack.wait_workers(stack["RESOURCED_REDIS_URL"], count=3)
        bodies = [
            export_body(
                stack["SESSION"],
                "alice",
                PDT_MS + i * 100,
                2000,
                LivePath="live/burst",
                FileName=f"burst{i}",
                export_type=1,
            )
            for i in range(9)
        ]
        answers: dict[int, dict[str, Any]] = {}

        def run(i: int) -> None:
            answers[i] = poll_export(stack["WEB"], bodies[i], timeout_s=120)[1]

        threads = [threading.Thread(target=run, args=(i,)) for i in range(9)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(a["ErrorCode"] == 5 for a in answers.values()), answers
        records = [job_hash(stack, f"burst{i}.mp4") for i in range(9)]
        assert all(r["deliveries"] == "1" and r["attempt"] == "1" for r in records)
        assert len({r["worker"] for r in records}) >= 2  # the burst was shared
    finally:
        for worker in workers:
            devstack.stop(worker, 20)


def test_redis_restart_mid_job(service_env: dict[str, str], logs_dir: Path, s3: Any, tmp_path: Path) -> None:
    """While Redis is down the API answers a clear 503; afterwards the job completes, nothing restarted."""
    store = devstack.RestartableRedis(tmp_path, logs_dir / "redis-restart.log")
    store.start()
    env = {**service_env, "RESOURCED_REDIS_URL": store.url, **FAST_FAILOVER}
    try:
        with devstack.service(env, logs_dir, "restart") as base:
            rec = generate_recording(
                tmp_path / "rec", SampleSpec(seconds=12, width=640, height=360, noise=True)
            )
            upload_recording(s3, "archive", "live/restart", rec)
            session = devstack.issue_session(env, "alice")
            body = export_body(
                session, "alice", PDT_MS, 11_000, LivePath="live/restart", FileName="restart", export_type=2
            )
            requests.post(f"{base}/resource/v1/i/export-to-s3dir", json=body, timeout=10)
            devstack.wait_for(
                lambda: job_hash({"RESOURCED_REDIS_URL": store.url}, "restart.mp4").get("state") == "running",
                "job running",
                30,
            )
            store.stop()
            down = requests.post(f"{base}/resource/v1/i/export-to-s3dir", json=body, timeout=15)
            assert down.status_code == 503
            assert down.json()["ErrorCode"] == 6 and "unavailable" in down.json()["ErrorMessage"]
            assert int(down.headers["Retry-After"]) > 0
            assert requests.get(f"{base}/readyz", timeout=15).status_code == 503
            store.start()
            status, answer = poll_export(base, body, timeout_s=120)
            assert (status, answer["ErrorCode"]) == (200, 5), answer
            assert requests.get(f"{base}/readyz", timeout=15).status_code == 200
    finally:
        store.stop()


def test_s3_faults_are_retried_and_a_permanent_one_fails_clearly(
    service_env: dict[str, str], logs_dir: Path, s3: Any, s3_endpoint: str, tmp_path: Path
) -> None:
    for name in ("flaky", "broken"):
        upload_recording(
            s3, "archive", f"live/{name}", generate_recording(tmp_path / name, SampleSpec(seconds=4))
        )
    with fault_proxy(s3_endpoint) as proxy, devstack.redis_server(logs_dir / "redis-faults.log") as url:
        proxy.flaky, proxy.broken = r"/archive/live/flaky/.*\.ts", r"/archive/live/broken/.*\.ts"
        env = {
            **service_env,
            "RESOURCED_REDIS_URL": url,
            "RESOURCED_S3_ENDPOINT_URL": proxy.url,
            "RESOURCED_S3_MAX_ATTEMPTS": "3",
            "RESOURCED_TASK_RETRY_BASE_S": "0.2",
        }
        with devstack.service(env, logs_dir, "faults") as base:
            session = devstack.issue_session(env, "alice")
            flaky = export_body(session, "alice", PDT_MS, 3000, LivePath="live/flaky", FileName="flaky")
            status, answer = poll_export(base, flaky, timeout_s=60)
            assert (status, answer["ErrorCode"]) == (200, 5), answer
            assert max(n for path, n in proxy.seen.items() if "/live/flaky/" in path) >= 3  # it was retried
            broken = export_body(session, "alice", PDT_MS, 3000, LivePath="live/broken", FileName="broken")
            status, answer = poll_export(base, broken, timeout_s=90)
            assert (status, answer["ErrorCode"]) == (500, 6), answer
            assert (
                "storage kept failing" in answer["ErrorMessage"] and "InternalError" in answer["ErrorMessage"]
            )
