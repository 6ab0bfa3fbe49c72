"""The reaper acts on expired leases (never on how old the progress is), caps attempts, fences
the attempt it replaced off every write, and aborts a job's recorded uploads before it gives up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from tasks.exports.leases import AttemptLease, LeaseLost
from tasks.exports.outcomes import read_totals
from tasks.exports.spec import ErrorCode, ExportResult, ExportSpec, ExportType, S3Location
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore
from tasks.platform import keys
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore, StorageError
from tests.factories import current_token, export_spec
from tests.helpers import moto_buckets
from workers.runtime import reaper

RESULT = ExportResult("dst", "us-east-1", "x", "x/clip.mp4", "x/clip.jpg", "v1", 5000, 0, 10, "h264")


def spec(start: int = 1000) -> ExportSpec:
    return export_spec(
        source=S3Location("src", "us-east-1"),
        live_path="cam/1",
        start_ms=start,
        duration_ms=5000,
        export_type=ExportType.H264,
        destination=S3Location("dst", "us-east-1", "x"),
    )


class Sent:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, job_id: str, token: str, queue: str) -> None:
        self.calls.append((job_id, token, queue))


def reap(jobs: ExportJobStore, client: fakeredis.FakeRedis, sent: Sent, **options: Any) -> int:
    """The reaper, with an object store that no test here gives an upload to abort (moto ones do)."""
    return reaper.reap(jobs, client, sent, uploads=options.pop("uploads", ObjectStore(Settings())), **options)


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def jobs(client: fakeredis.FakeRedis) -> ExportJobStore:
    return ExportJobStore(client, job_ttl_s=3600)


def running(jobs: ExportJobStore, start: int = 1000) -> str:
    job = spec(start)
    token = jobs.admit(job, "export.cpu", 10, 10).detail
    assert jobs.claim(job.job_id, token, "w1", lease_ttl_s=30) == "running"
    return job.job_id


def expire_lease(client: fakeredis.FakeRedis, job_id: str) -> None:
    client.delete(keys.export_lease(job_id))  # what the TTL does once the worker stops renewing


def test_a_held_lease_keeps_the_job_however_old_its_progress(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    job_id = running(jobs)
    client.hset(keys.export_job(job_id), "updated_at", "1")  # no progress for decades
    sent = Sent()
    assert reap(jobs, client, sent, lost_queued_s=60, max_attempts=3) == 0
    assert sent.calls == []
    record = jobs.get(job_id)
    assert record is not None and record.state is JobState.RUNNING and record.attempt == 1


def test_an_expired_lease_is_requeued_as_the_next_attempt_and_fences_the_old_one(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    job_id = running(jobs)
    first = current_token(jobs, job_id)
    old = AttemptLease(jobs, job_id, first, 30)
    old.check()  # still ours
    expire_lease(client, job_id)
    sent = Sent()
    assert reap(jobs, client, sent, lost_queued_s=60, max_attempts=3) == 1
    second = current_token(jobs, job_id)
    assert sent.calls == [(job_id, second, "export.cpu")] and second != first
    record = jobs.get(job_id)
    assert record is not None and record.state is JobState.QUEUED and record.attempt == 2
    # The old attempt, waking up, can change nothing.
    with pytest.raises(LeaseLost):
        old.check()
    assert not old.renew()
    with pytest.raises(LeaseLost):
        old.record_upload("dst", "x/clip.mp4", "us-east-1", "upload-1", 3600)
    assert not jobs.progress(job_id, first, 0.9, "uploading")
    assert not jobs.finish(job_id, first, RESULT)
    assert jobs.claim(job_id, first, "w1") == "stale"  # its redelivered message too
    assert jobs.claim(job_id, second, "w2") == "running"
    assert AttemptLease(jobs, job_id, second, 30).renew()


def test_a_second_delivery_of_a_running_attempt_never_runs_beside_it(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    job_id = running(jobs)
    token = current_token(jobs, job_id)
    assert jobs.claim(job_id, token, "w2") == "held"
    expire_lease(client, job_id)
    assert jobs.claim(job_id, token, "w2") == "held"  # not even once the holder is silent: the reaper decides


def test_attempts_are_capped_with_error_code_6_and_the_reason(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    job_id = running(jobs)
    sent = Sent()
    for _ in (1, 2):
        expire_lease(client, job_id)
        assert reap(jobs, client, sent, lost_queued_s=60, max_attempts=3) == 1
        assert jobs.claim(job_id, sent.calls[-1][1], "w") == "running"
    expire_lease(client, job_id)
    assert reap(jobs, client, sent, lost_queued_s=60, max_attempts=3) == 1
    assert len(sent.calls) == 2  # no fourth attempt was sent
    record = jobs.get(job_id)
    assert record is not None and record.state is JobState.FAILED
    assert record.error_code == int(ErrorCode.FAILED)
    assert "gave up after 3 attempt(s)" in record.error and "lease expired" in record.error
    assert jobs.active_count() == 0  # its admission slots are free
    assert read_totals(client).counts[("h264", "attempts_exhausted")] == 1


def test_the_cap_counts_only_the_attempts_of_this_admission(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    job = spec()
    for _ in (1, 2):  # two failures, each answered once, then asked for again
        token = jobs.admit(job, "export.cpu", 10, 10).detail
        assert jobs.claim(job.job_id, token, "w") == "running"
        assert jobs.fail(job.job_id, token, ErrorCode.FAILED, "S3 refused the upload")
        assert jobs.admit(job, "export.cpu", 10, 10).outcome == "exists"  # the failure answered
    token = jobs.admit(job, "export.cpu", 10, 10).detail  # a fresh token each admission (fencing)
    assert jobs.claim(job.job_id, token, "w") == "running"
    sent = Sent()
    expire_lease(client, job.job_id)
    assert reap(jobs, client, sent, lost_queued_s=60, max_attempts=3) == 1
    assert len(sent.calls) == 1  # retried: the first lost lease of this admission
    for _ in (4, 5):
        assert jobs.claim(job.job_id, sent.calls[-1][1], "w") == "running"
        expire_lease(client, job.job_id)
        assert reap(jobs, client, sent, lost_queued_s=60, max_attempts=3) == 1
    assert len(sent.calls) == 2
    record = jobs.get(job.job_id)
    assert record is not None and record.state is JobState.FAILED
    assert "gave up after 3 attempt(s)" in record.error


def test_a_renewed_lease_wins_over_a_reaper_that_looked_before(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    job_id = running(jobs)
    token = current_token(jobs, job_id)
    expire_lease(client, job_id)
    assert AttemptLease(jobs, job_id, token, 30).renew()  # the worker came back before the reaper acted
    assert jobs.requeue(job_id, token) == 0
    assert not jobs.fail(job_id, token, ErrorCode.FAILED, "gave up", unless_leased=True)


def test_a_queued_job_whose_message_was_lost_is_sent_again(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    job = spec()
    token = jobs.admit(job, "export.copy", 10, 10).detail
    sent = Sent()
    assert reap(jobs, client, sent, lost_queued_s=60, max_attempts=3) == 0  # fresh: its message is waiting
    for _ in range(3):  # a long wait in the queue never uses up its attempts
        client.hset(keys.export_job(job.job_id), "updated_at", "1")
        assert reap(jobs, client, sent, lost_queued_s=60, max_attempts=3) == 1
    # the same attempt each time: its first message, if only waiting, stays valid
    assert sent.calls == [(job.job_id, token, "export.copy")] * 3
    record = jobs.get(job.job_id)
    assert record is not None and record.state is JobState.QUEUED and record.attempt == 1
    assert reap(jobs, client, sent, lost_queued_s=60, max_attempts=3) == 0  # just sent: not again
    assert jobs.claim(job.job_id, token, "w1") == "running"  # the first message to arrive runs it
    assert jobs.claim(job.job_id, token, "w2") == "held"  # the duplicate does nothing


def test_a_job_no_worker_ever_takes_fails_with_the_reason(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    """Its queue has no consumer (GPU workers gone, say): after max_attempts resends it ends as 6
    naming the queue, instead of holding its slots as 'queued' until the record expires."""
    job = spec()
    jobs.admit(job, "export.gpu", 10, 10)
    assert client.keys(keys.destination_claim("*", "*")) != []  # admitted: its keys are claimed
    sent = Sent()
    for _ in range(4):
        client.hset(keys.export_job(job.job_id), "updated_at", "1")
        reap(jobs, client, sent, lost_queued_s=60, max_attempts=3)
    assert len(sent.calls) == 3
    record = jobs.get(job.job_id)
    assert record is not None and record.state is JobState.FAILED
    assert "no worker took the export from queue 'export.gpu'" in record.error
    assert jobs.active_count() == 0
    assert client.keys(keys.destination_claim("*", "*")) == []  # its keys are free again


def test_expired_records_free_their_slot_and_one_reaper_runs_at_a_time(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    job_id = running(jobs)
    client.delete(keys.export_job(job_id))
    assert reap(jobs, client, Sent(), lost_queued_s=60, max_attempts=3) == 0
    assert jobs.active_count() == 0
    other = running(jobs, start=2000)
    expire_lease(client, other)
    lock = client.lock(keys.REAPER_LOCK, timeout=60)
    assert lock.acquire()
    assert reap(jobs, client, Sent(), lost_queued_s=60, max_attempts=3) == 0  # another worker reaps
    lock.release()
    assert reap(jobs, client, Sent(), lost_queued_s=60, max_attempts=3) == 1


def test_a_job_waiting_for_a_restore_holds_no_slot_and_lives_as_long_as_the_restore(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    job_id = running(jobs)
    token = current_token(jobs, job_id)
    assert jobs.park(job_id, token, keep_s=52 * 3600)
    assert jobs.active_count() == 0 and client.zcard(keys.active_exports_of("alice")) == 0
    assert client.ttl(keys.export_job(job_id)) > 48 * 3600
    assert not jobs.lease_held(job_id)
    assert not AttemptLease(jobs, job_id, token, 30).renew()  # nothing keeps a lease while parked
    sent = Sent()
    assert reap(jobs, client, sent, lost_queued_s=60, max_attempts=3) == 0 and sent.calls == []
    record = jobs.get(job_id)
    assert record is not None and record.state is JobState.PARKED and record.step == "restoring"
    assert jobs.claim(job_id, "another", "w") == "stale"
    assert jobs.claim(job_id, token, "w") == "running"  # its poll resumes it, holding a slot again
    assert jobs.active_count() == 1 and jobs.lease_held(job_id)


def test_release_hands_the_attempt_back_for_a_task_retry(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    job_id = running(jobs)
    token = current_token(jobs, job_id)
    assert jobs.release(job_id, token)
    assert not jobs.lease_held(job_id)
    assert jobs.claim(job_id, token, "w2") == "running"
    assert not jobs.release(job_id, "another")  # another attempt's release is refused


def test_a_parked_job_nobody_looked_at_is_polled_again_under_its_own_attempt(
    jobs: ExportJobStore, client: fakeredis.FakeRedis
) -> None:
    job_id = running(jobs)
    token = current_token(jobs, job_id)
    assert jobs.park(job_id, token, keep_s=52 * 3600)
    sent = Sent()
    assert (
        reap(jobs, client, sent, lost_queued_s=60, max_attempts=3, parked_quiet_s=960) == 0
    )  # polled lately
    client.zadd(keys.PARKED_EXPORTS, {job_id: 1.0})  # its countdown message died with a worker
    assert reap(jobs, client, sent, lost_queued_s=60, max_attempts=3, parked_quiet_s=960) == 1
    assert sent.calls == [(job_id, token, "export.cpu")]
    assert (
        reap(jobs, client, sent, lost_queued_s=60, max_attempts=3, parked_quiet_s=960) == 0
    )  # not again at once
    assert jobs.claim(job_id, token, "w") == "running"
    client.zadd(keys.PARKED_EXPORTS, {job_id: 1.0})
    assert (
        reap(jobs, client, sent, lost_queued_s=60, max_attempts=3, parked_quiet_s=960) == 0
    )  # resumed meanwhile
    assert client.zscore(keys.PARKED_EXPORTS, job_id) is None


@pytest.fixture
def s3() -> Iterator[Any]:
    with moto_buckets("dst") as client:
        yield client


def test_the_reaper_aborts_recorded_uploads_before_it_gives_up(
    jobs: ExportJobStore, client: fakeredis.FakeRedis, s3: Any
) -> None:
    """The last attempt began its upload, recorded it, and froze between its fence check and
    CompleteMultipartUpload. By the time the client is told 6, that upload is gone: the frozen
    completer, waking, can never make the object the client was told does not exist."""
    store = ObjectStore(Settings())
    job_id = running(jobs)
    job = spec()
    token = current_token(jobs, job_id)
    frozen = store.start_multipart("dst", job.video_key, "video/mp4")
    AttemptLease(jobs, job_id, token, 30).record_upload(
        "dst", job.video_key, "us-east-1", frozen.upload_id, 3600
    )
    frozen.upload_part(1, b"x" * 1024)
    client.hset(keys.export_job(job_id), "attempt", 3)  # its last attempt
    expire_lease(client, job_id)
    assert reap(jobs, client, Sent(), lost_queued_s=60, max_attempts=3, uploads=store) == 1
    record = jobs.get(job_id)
    assert record is not None and record.state is JobState.FAILED
    assert s3.list_multipart_uploads(Bucket="dst").get("Uploads", []) == []
    with pytest.raises((StorageError, KeyError)):  # NoSuchUpload (moto in-process: a KeyError)
        frozen.complete()
    assert "Contents" not in s3.list_objects_v2(Bucket="dst")
    assert client.hlen(keys.export_uploads(job_id)) == 0
