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
from tests.helpers import export_body, upload_recording
from tests.integration.conftest import poll_export, wait_worker_registered
from workers.samples import SampleSpec, generate_recording

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
        port = devstack.free_port()
        web = devstack.start_procfile("web", {**env, "PORT": str(port)}, logs_dir / "web-reliability.log")
        devstack.wait_http_ok(f"http://127.0.0.1:{port}/healthz", proc=web)
        token = subprocess.run(
            [str(devstack.BIN / "resourced"), "session", "issue", "--user", "alice"],
            env={**env, "PATH": str(devstack.BIN)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        yield {**env, "WEB": f"http://127.0.0.1:{port}", "SESSION": token}
        devstack.stop(web)


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
    wait_worker_registered(stack["RESOURCED_REDIS_URL"])
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
        wait_worker_registered(stack["RESOURCED_REDIS_URL"], count=3)
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
