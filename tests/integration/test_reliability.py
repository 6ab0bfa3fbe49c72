"""Faults with real processes, over both brokers (Redis and RabbitMQ): a worker frozen (SIGSTOP)
while its final upload is in flight and another takes over, a worker killed during the final
upload, Redis restarted mid-export, several workers sharing a burst. Whatever happens, one
export leaves one video version and one image version in a versioned bucket, the right frames,
and no multipart upload. This module runs its own Redis, proxy and web, so it decides which
workers exist."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from scripts import devstack
from scripts.samples import SampleSpec, generate_recording
from tests.helpers import export_body, storage_info, upload_recording
from tests.integration.conftest import BUCKETS, poll_export
from tests.integration.faultproxy import FaultProxy, fault_proxy
from tests.media import frame_indices

pytestmark = pytest.mark.integration
PDT_MS = 1_700_000_000_000
VERSIONED = "versioned-exports"  # every write is a new object version: duplicates cannot hide
FAST_FAILOVER = {
    "RESOURCED_HEARTBEAT_TTL": "3",
    "RESOURCED_LEASE_TTL_S": "3",
    "RESOURCED_WORKER_CONCURRENCY": "1",
    "RESOURCED_ALLOWED_BUCKETS": ",".join((*BUCKETS, VERSIONED)),
}
# CompleteMultipartUpload of an exported video: the last S3 call of an export.
FINAL_UPLOAD = r"^POST /" + VERSIONED + r"/.*\.mp4\?uploadId="


@pytest.fixture(scope="module", params=["redis", "amqp"])
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, logs_dir: Path
) -> Iterator[str]:
    """ "" for the Redis broker (the job store's own Redis), or a private RabbitMQ node's URL."""
    if request.param == "redis":
        yield ""
        return
    if devstack.rabbitmq_binary() is None:
        reason = "rabbitmq-server is not installed (scripts/bootstrap.sh installs it)"
        if os.environ.get("CI"):  # CI must run the amqp half: a skip there would pass vacuously
            pytest.fail(reason)
        pytest.skip(f"{reason}: amqp runs skipped")
    with devstack.rabbitmq_server(tmp_path_factory.mktemp("rabbitmq"), logs_dir / "rabbitmq.log") as url:
        yield url


@pytest.fixture(scope="module")
def versioned(s3: Any) -> str:
    s3.create_bucket(Bucket=VERSIONED)
    s3.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})
    return VERSIONED


@pytest.fixture(scope="module")
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with fault_proxy(s3_endpoint) as state:
        yield state


@pytest.fixture
def stack(
    broker: str, service_env: dict[str, str], logs_dir: Path, s3: Any, versioned: str, proxy: FaultProxy
) -> Iterator[dict[str, str]]:
    """Web on a Redis of its own (each test's records apart), S3 through the proxy; no workers."""
    proxy.hold_once, proxy.held, proxy.release = r"$^", threading.Event(), threading.Event()
    tag = f"reliability-{broker.split(':')[0] or 'redis'}"
    with devstack.redis_server(logs_dir / f"redis-{tag}.log") as url:
        env = {
            **service_env,
            "RESOURCED_REDIS_URL": url,
            "RESOURCED_S3_ENDPOINT_URL": proxy.url,
            "CELERY_BROKER_URL": broker,
            **FAST_FAILOVER,
        }
        with devstack.service(env, logs_dir, tag, workers=0) as base:  # each test starts its own
            yield {**env, "WEB": base, "SESSION": devstack.issue_session(env, "alice"), "TAG": tag}
    proxy.release.set()


def start_worker(stack: dict[str, str], logs_dir: Path, name: str) -> subprocess.Popen:
    env = {k: v for k, v in stack.items() if k not in {"WEB", "SESSION", "TAG"}}
    return devstack.start_procfile("worker", env, logs_dir / f"worker-{name}.log")


def job_hash(stack: dict[str, str], marker: str) -> dict[str, str]:
    client = redis.Redis.from_url(stack["RESOURCED_REDIS_URL"], decode_responses=True)
    for key in client.scan_iter("resourced:export:*"):
        if client.type(key) == "hash" and marker in (client.hget(key, "spec") or ""):
            return client.hgetall(key)
    return {}


def outcomes(stack: dict[str, str]) -> dict[str, str]:
    client = redis.Redis.from_url(stack["RESOURCED_REDIS_URL"], decode_responses=True)
    return client.hgetall("resourced:metrics:exports")


def clip_body(stack: dict[str, str], s3: Any, tmp_path: Path, name: str) -> dict[str, Any]:
    """A 3 s stream-copy export of frames 25..99 of a 6 s recording, into the versioned bucket,
    named `name`; the recording and the file are the broker's own (the bucket is shared)."""
    rec = generate_recording(tmp_path / name, SampleSpec(seconds=6))
    upload_recording(s3, "archive", f"live/{stack['TAG']}/{name}", rec)
    return export_body(
        stack["SESSION"],
        "alice",
        PDT_MS + 1000,
        3000,
        LivePath=f"live/{stack['TAG']}/{name}",
        FileName=name,
        storage_info=storage_info("archive", VERSIONED),
    )


def assert_exactly_once(s3: Any, answer: dict[str, Any], name: str, tmp_path: Path) -> None:
    prefix = answer["S3Dir"] + "/"
    listed = s3.list_object_versions(Bucket=VERSIONED, Prefix=prefix)
    versions = sorted(v["Key"] for v in listed.get("Versions", []))
    assert versions == [prefix + f"{name}.jpg", prefix + f"{name}.mp4"], versions  # one version each
    assert listed.get("DeleteMarkers", []) == []
    assert s3.list_multipart_uploads(Bucket=VERSIONED, Prefix=prefix).get("Uploads", []) == []
    video = next(v for v in listed["Versions"] if v["Key"].endswith(".mp4"))
    assert answer["Version"] == video["VersionId"]
    s3.download_file(VERSIONED, prefix + f"{name}.mp4", str(tmp_path / f"{name}.mp4"))
    assert frame_indices(tmp_path / f"{name}.mp4") == list(range(25, 100))


def ask(stack: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    status, answer = poll_export(stack["WEB"], body, timeout_s=120)
    assert (status, answer["ErrorCode"]) == (200, 5), answer
    return answer


def test_a_worker_frozen_during_its_final_upload_changes_nothing_when_it_wakes(
    stack: dict[str, str], logs_dir: Path, s3: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    body = clip_body(stack, s3, tmp_path, "frozen")
    proxy.hold_once = FINAL_UPLOAD
    first = start_worker(stack, logs_dir, "frozen")
    second = None
    try:
        devstack.wait_workers(stack["RESOURCED_REDIS_URL"])
        requests.post(f"{stack['WEB']}/resource/v1/i/export-to-s3dir", json=body, timeout=10)
        assert proxy.held.wait(120), "the export never reached its final upload"
        os.killpg(first.pid, signal.SIGSTOP)  # frozen past its fence check, its Complete in flight
        second = start_worker(stack, logs_dir, "rescuer")
        answer = ask(stack, body)  # the second worker took over once the lease expired
        assert job_hash(stack, "frozen.mp4")["attempt"] == "2"
        proxy.release.set()  # the frozen attempt's CompleteMultipartUpload reaches S3 only now
        os.killpg(first.pid, signal.SIGCONT)
        devstack.wait_for(lambda: outcomes(stack).get("count:copy:lease_lost") == "1", "fenced off", 60)
        assert_exactly_once(s3, answer, "frozen", tmp_path)
        again = ask(stack, body)
        assert (again["Version"], again["S3Dir"], again["LackLength"]) == (
            answer["Version"],
            answer["S3Dir"],
            0,
        )
        assert outcomes(stack).get("count:copy:ready") == "1"
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGCONT)  # a stopped process would ignore SIGTERM
        devstack.stop(first, 20)
        if second is not None:
            devstack.stop(second, 20)


def test_a_worker_killed_during_its_final_upload_is_replaced_and_its_upload_adopted(
    stack: dict[str, str], logs_dir: Path, s3: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    body = clip_body(stack, s3, tmp_path, "killed")
    proxy.hold_once = FINAL_UPLOAD
    first = start_worker(stack, logs_dir, "doomed")
    second = None
    try:
        devstack.wait_workers(stack["RESOURCED_REDIS_URL"])
        requests.post(f"{stack['WEB']}/resource/v1/i/export-to-s3dir", json=body, timeout=10)
        assert proxy.held.wait(120), "the export never reached its final upload"
        os.killpg(first.pid, signal.SIGKILL)  # no chance to ack, abort, record or withdraw
        first.wait(10)
        proxy.release.set()  # its Complete had reached S3: the video exists, the job does not know
        second = start_worker(stack, logs_dir, "rescuer")
        answer = ask(stack, body)
        assert job_hash(stack, "killed.mp4")["attempt"] == "2"  # the reaper requeued it
        assert_exactly_once(s3, answer, "killed", tmp_path)  # adopted, not uploaded again
    finally:
        devstack.stop(first, 5)
        if second is not None:
            devstack.stop(second, 20)


REDIS_DOWN_S = 12  # an outage longer than the lease and the heartbeat TTLs, and than kombu's first retries
RECOVERY_S = 45  # a job ends this soon after Redis is back: a few lease TTLs, a reaper pass, the export
CREATE_VIDEO_UPLOAD = r"^POST /" + VERSIONED + r"/.*\.mp4\?uploads"  # its first S3 write


@contextmanager
def restartable_stack(
    broker: str,
    service_env: dict[str, str],
    logs_dir: Path,
    proxy: FaultProxy,
    directory: Path,
    persistent: bool,
) -> Iterator[tuple[devstack.RestartableRedis, dict[str, str]]]:
    """Like `stack`, over a Redis the test kills and starts again on the same port."""
    tag = f"outage-{broker.split(':')[0] or 'redis'}-{'aof' if persistent else 'bare'}"
    proxy.hold_once, proxy.held, proxy.release = r"$^", threading.Event(), threading.Event()
    store = devstack.RestartableRedis(directory, logs_dir / f"redis-{tag}.log", persistent)
    store.start()
    env = {
        **service_env,
        "RESOURCED_REDIS_URL": store.url,
        "RESOURCED_S3_ENDPOINT_URL": proxy.url,
        "CELERY_BROKER_URL": broker,
        **FAST_FAILOVER,
        # A free slot: the worker's consumer is waiting on its queues (BRPOP) when Redis dies,
        # the moment that used to end Celery with "Unrecoverable error: AttributeError".
        "RESOURCED_WORKER_CONCURRENCY": "2",
    }
    try:
        with devstack.service(env, logs_dir, tag, workers=0) as base:
            yield store, {**env, "WEB": base, "SESSION": devstack.issue_session(env, "alice"), "TAG": tag}
    finally:
        proxy.release.set()
        store.stop()


def assert_unavailable(stack: dict[str, str], body: dict[str, Any]) -> None:
    """While Redis is down a poll gets the documented 503, ErrorCode 6 and when to come back."""
    down = requests.post(f"{stack['WEB']}/resource/v1/i/export-to-s3dir", json=body, timeout=15)
    assert down.status_code == 503, down.text
    assert down.json()["ErrorCode"] == 6 and "unavailable" in down.json()["ErrorMessage"]
    assert int(down.headers["Retry-After"]) > 0
    assert requests.get(f"{stack['WEB']}/readyz", timeout=15).status_code == 503


def assert_celery_survived(worker: subprocess.Popen, logs_dir: Path, stack: dict[str, str]) -> None:
    """The launcher is up and never had to restart Celery: the outage did not end it."""
    assert worker.poll() is None, "the worker's launcher ended"
    log = (logs_dir / f"worker-{stack['TAG']}.log").read_text()
    assert "worker exited unexpectedly" not in log and "Unrecoverable error" not in log


@contextmanager
def worker_with_export_held(
    stack: dict[str, str], logs_dir: Path, proxy: FaultProxy, body: dict[str, Any], step: str, what: str
) -> Iterator[subprocess.Popen]:
    """A worker, and the export submitted (answered at once) and held by the proxy at the S3
    request `step` until the test sets proxy.release; the worker is stopped on the way out."""
    proxy.hold_once = step
    worker = start_worker(stack, logs_dir, stack["TAG"])
    try:
        devstack.wait_workers(stack["RESOURCED_REDIS_URL"])
        headers = {"Prefer": "wait=0"}
        requests.post(f"{stack['WEB']}/resource/v1/i/export-to-s3dir", json=body, headers=headers, timeout=10)
        assert proxy.held.wait(120), f"the export never {what}"
        yield worker
    finally:
        devstack.stop(worker, 20)


def test_a_worker_outlives_a_redis_crash_and_the_job_then_completes_once(
    broker: str,
    service_env: dict[str, str],
    logs_dir: Path,
    s3: Any,
    versioned: str,
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    """Redis killed (-9) while the only worker's export is in flight, back with its append-only
    file 12 s later: the worker reconnects and keeps consuming, the job ends 5, once."""
    with restartable_stack(broker, service_env, logs_dir, proxy, tmp_path, persistent=True) as (store, stack):
        body = clip_body(stack, s3, tmp_path, "crash")
        reached = "reached its final upload"
        with worker_with_export_held(stack, logs_dir, proxy, body, FINAL_UPLOAD, reached) as worker:
            store.kill()
            assert_unavailable(stack, body)
            time.sleep(REDIS_DOWN_S)
            store.start()
            back = time.monotonic()
            proxy.release.set()
            status, answer = poll_export(stack["WEB"], body, timeout_s=RECOVERY_S)
            assert (status, answer["ErrorCode"]) == (200, 5), answer
            assert time.monotonic() - back < RECOVERY_S
            assert requests.get(f"{stack['WEB']}/readyz", timeout=15).status_code == 200
            assert_exactly_once(s3, answer, "crash", tmp_path)
            after = ask(stack, clip_body(stack, s3, tmp_path, "after"))  # still consuming
            assert_exactly_once(s3, after, "after", tmp_path)
            assert_celery_survived(worker, logs_dir, stack)


def test_a_redis_that_comes_back_empty_fences_the_running_attempt_and_a_new_poll_starts_over(
    broker: str,
    service_env: dict[str, str],
    logs_dir: Path,
    s3: Any,
    versioned: str,
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    """Redis without persistence, restarted while the export starts its video upload: the job
    record is gone, so the running attempt is fenced off and writes nothing; the client's next
    poll admits the request afresh, and that job leaves one version of each object."""
    with restartable_stack(broker, service_env, logs_dir, proxy, tmp_path, persistent=False) as (
        store,
        stack,
    ):
        body = clip_body(stack, s3, tmp_path, "amnesia")
        began = "began its video upload"
        with worker_with_export_held(stack, logs_dir, proxy, body, CREATE_VIDEO_UPLOAD, began) as worker:
            store.kill()
            store.start()  # empty: no job, no lease, no broker queues
            proxy.release.set()
            devstack.wait_for(lambda: outcomes(stack).get("count:copy:lease_lost") == "1", "fenced off", 30)
            answer = ask(stack, body)
            assert_exactly_once(s3, answer, "amnesia", tmp_path)
            assert job_hash(stack, "amnesia.mp4")["attempt"] == "1"  # a new job, not a takeover
            assert_celery_survived(worker, logs_dir, stack)


def test_three_workers_share_a_burst_and_run_each_job_once(
    stack: dict[str, str], logs_dir: Path, s3: Any, tmp_path: Path
) -> None:
    live = f"live/burst-{stack['TAG']}"
    upload_recording(s3, "archive", live, generate_recording(tmp_path / "burst", SampleSpec(seconds=6)))
    workers = [start_worker(stack, logs_dir, f"burst{i}") for i in range(3)]
    try:
        devstack.wait_workers(stack["RESOURCED_REDIS_URL"], count=3)
        bodies = [
            export_body(
                stack["SESSION"],
                "alice",
                PDT_MS + i * 100,
                2000,
                LivePath=live,
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
            "RESOURCED_TASK_RETRY_BASE_S": "1",
            "RESOURCED_TASK_MAX_RETRIES": "2",
        }
        with devstack.service(env, logs_dir, "faults") as base:
            session = devstack.issue_session(env, "alice")
            flaky = export_body(session, "alice", PDT_MS, 3000, LivePath="live/flaky", FileName="flaky")
            status, answer = poll_export(base, flaky, timeout_s=60)
            assert (status, answer["ErrorCode"]) == (200, 5), answer
            assert max(n for path, n in proxy.seen.items() if "/live/flaky/" in path) >= 3  # it was retried
            broken = export_body(session, "alice", PDT_MS, 3000, LivePath="live/broken", FileName="broken")
            status, answer = poll_export(base, broken, timeout_s=120)
            assert (status, answer["ErrorCode"]) == (500, 6), answer
            assert (
                "storage kept failing" in answer["ErrorMessage"] and "InternalError" in answer["ErrorMessage"]
            )
            counts = redis.Redis.from_url(url, decode_responses=True).hgetall("resourced:metrics:exports")
            assert counts.get("count:copy:retried_out") == "1"  # a system failure reaches the metric


def test_queue_depth_is_read_from_the_broker_in_use(stack: dict[str, str], s3: Any, tmp_path: Path) -> None:
    """Redis lists or RabbitMQ queue counts: an export nobody consumes yet shows as waiting."""
    body = clip_body(stack, s3, tmp_path, "waiting")
    answer = requests.post(f"{stack['WEB']}/resource/v1/i/export-to-s3dir", json=body, timeout=10).json()
    assert answer["ErrorCode"] == 1, answer
    metrics = requests.get(f"{stack['WEB']}/metrics", timeout=10).text
    assert 'resourced_queue_depth{queue="export.copy"} 1.0' in metrics, metrics
