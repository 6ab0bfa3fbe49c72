"""The export job's state machine over fakeredis: random attempt tokens survive the loss of a
record, cancel is one atomic transition, registries list a user's jobs newest first, every
script takes its keys in KEYS, and nothing runs unfenced by default."""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from tasks.exports import scripts
from tasks.exports.leases import AttemptLease, LeaseLost
from tasks.exports.spec import ErrorCode, ExportResult, ExportSpec
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore
from tasks.exports.uploads import abort_recorded_uploads
from tasks.platform import keys
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore, StorageError
from tasks.tenancy.ownership import claim_holders
from tests.factories import current_token, store_spec
from tests.helpers import moto_buckets
from workers.jobs import export_pipeline

RESULT = ExportResult("dst", "us-east-1", "x", "x/clip.mp4", "x/clip.jpg", "v1", 5000, 0, 10, "h264")


def spec(user: str = "alice", start: int = 1000, folder: str = "") -> ExportSpec:
    return store_spec(user, start, folder or f"out/{user}")


@pytest.fixture
def jobs() -> ExportJobStore:
    return ExportJobStore(fakeredis.FakeRedis(), job_ttl_s=3600)


def started(jobs: ExportJobStore, job: ExportSpec) -> str:
    token = jobs.admit(job, "export.copy", 10, 10).detail
    assert jobs.claim(job.job_id, token, "w1") == "running"
    return token


def test_a_stale_attempt_is_refused_after_redis_lost_the_record(jobs: ExportJobStore) -> None:
    """Redis lost the job's record (no persistence, eviction) while attempt 1 ran; the same
    request admits it again. The old attempt's renewals, fences, uploads and result are all
    refused: its token is not the new record's, as an attempt number 1 would have been."""
    job = spec()
    old = started(jobs, job)
    jobs.redis.delete(keys.export_job(job.job_id), keys.export_lease(job.job_id))  # the record is lost
    assert jobs.admit(job, "export.copy", 10, 10).outcome == "created"
    new = current_token(jobs, job.job_id)
    assert jobs.claim(job.job_id, new, "w2") == "running" and new != old
    stale = AttemptLease(jobs, job.job_id, old, 30)
    assert not stale.renew()
    with pytest.raises(LeaseLost):
        stale.check()
    with pytest.raises(LeaseLost):
        stale.record_upload("dst", job.video_key, "us-east-1", "upload-1", 3600)
    assert not jobs.progress(job.job_id, old, 0.9, "uploading")
    assert jobs.pin_view(job.job_id, old, 1.0) is None
    assert not jobs.finish(job.job_id, old, RESULT)
    assert jobs.redis.get(keys.export_lease(job.job_id)) == new.encode()  # the lease is still the new one's
    record = jobs.get(job.job_id)
    assert record is not None and record.state is JobState.RUNNING and record.result is None


@pytest.mark.parametrize("where", ["queued", "running", "parked"])
def test_cancel_ends_an_active_job_and_fences_its_attempt(jobs: ExportJobStore, where: str) -> None:
    job = spec()
    token = jobs.admit(job, "export.copy", 10, 10).detail
    if where != "queued":
        assert jobs.claim(job.job_id, token, "w1") == "running"
    if where == "parked":
        assert jobs.park(job.job_id, token, keep_s=3600)
    woken = threading.Event()
    pubsub = jobs.redis.pubsub()
    pubsub.subscribe(keys.export_events(job.job_id))
    pubsub.get_message(timeout=1)  # the subscription's confirmation
    outcome, record = jobs.cancel(job.job_id, hold_s=60)
    assert outcome == "cancelled" and record is not None and record.state is JobState.CANCELLED
    message = pubsub.get_message(timeout=1)
    if message is not None and message["type"] == "message":
        woken.set()
    assert woken.is_set()  # held polls hear of it at once
    assert 0 < jobs.redis.ttl(keys.export_job(job.job_id)) <= 60
    assert not jobs.lease_held(job.job_id) and jobs.active_count() == 0
    assert jobs.redis.zcard(keys.active_exports_of("alice")) == 0
    assert jobs.redis.zscore(keys.PARKED_EXPORTS, job.job_id) is None
    assert claim_holders(jobs.redis, "dst", job.video_key) == {}  # its keys are given back
    with pytest.raises(LeaseLost):
        AttemptLease(jobs, job.job_id, token, 30).check()
    assert not AttemptLease(jobs, job.job_id, token, 30).renew()
    assert not jobs.finish(job.job_id, token, RESULT) and not jobs.progress(job.job_id, token, 0.5, "x")
    assert jobs.claim(job.job_id, token, "w2") == "cancelled"  # its message, redelivered, runs nothing
    again = jobs.admit(job, "export.copy", 10, 10)
    assert (again.outcome, again.detail) == ("exists", "cancelled")  # polls learn of it during the hold


def test_cancelling_an_ended_or_missing_job_changes_nothing(jobs: ExportJobStore) -> None:
    job = spec()
    token = started(jobs, job)
    assert jobs.finish(job.job_id, token, RESULT)
    before = jobs.redis.hgetall(keys.export_job(job.job_id))
    outcome, record = jobs.cancel(job.job_id, hold_s=60)
    assert outcome == "ended" and record is not None and record.state is JobState.DONE
    assert jobs.redis.hgetall(keys.export_job(job.job_id)) == before
    assert jobs.redis.ttl(keys.export_job(job.job_id)) > 60
    assert jobs.cancel("no-such-job", hold_s=60) == ("missing", None)


def test_a_cancel_keeps_the_claim_another_export_of_the_owner_still_writes(jobs: ExportJobStore) -> None:
    first, second = spec(start=1000), spec(start=2000)
    assert first.video_key == second.video_key
    jobs.admit(first, "export.copy", 10, 10)
    jobs.admit(second, "export.copy", 10, 10)
    jobs.cancel(first.job_id, hold_s=60)
    assert set(claim_holders(jobs.redis, "dst", first.video_key)) == {second.job_id}
    jobs.cancel(second.job_id, hold_s=60)
    assert jobs.redis.exists(keys.destination_claim("dst", first.video_key)) == 0


@pytest.fixture
def s3() -> Iterator[Any]:
    with moto_buckets("dst") as client:
        yield client


def test_a_cancelled_attempts_recorded_upload_is_aborted(jobs: ExportJobStore, s3: Any) -> None:
    """A running attempt began its upload and froze between its fence check and the completion;
    its owner cancels. After the abort, the frozen completion fails and no object exists."""
    store = ObjectStore(Settings())
    job = spec()
    token = started(jobs, job)
    upload = store.start_multipart("dst", job.video_key, "video/mp4")
    AttemptLease(jobs, job.job_id, token, 30).record_upload(
        "dst", job.video_key, "us-east-1", upload.upload_id, 3600
    )
    upload.upload_part(1, b"x" * 1024)
    assert jobs.cancel(job.job_id, hold_s=60)[0] == "cancelled"
    assert abort_recorded_uploads(jobs, store, job.job_id) == 1
    with pytest.raises((StorageError, KeyError)):  # NoSuchUpload (moto in-process: a KeyError)
        upload.complete()
    assert s3.list_multipart_uploads(Bucket="dst").get("Uploads", []) == []
    assert "Contents" not in s3.list_objects_v2(Bucket="dst")
    assert abort_recorded_uploads(jobs, store, job.job_id) == 0  # forgotten once aborted


def test_listing_is_newest_first_by_user_and_state_with_a_stable_cursor(jobs: ExportJobStore) -> None:
    mine = [spec(start=1000 + i) for i in range(5)]
    for job in mine:
        jobs.admit(job, "export.copy", 10, 10)
    jobs.admit(spec("bob"), "export.copy", 10, 10)
    newest_first = [j.job_id for j in reversed(mine)]
    page, cursor = jobs.list_jobs("alice", None, 2, "")
    assert [r.job_id for r in page] == newest_first[:2] and cursor
    jobs.admit(spec(start=9000), "export.copy", 10, 10)  # admitted while the client pages
    rest, end = jobs.list_jobs("alice", None, 10, cursor)
    assert [r.job_id for r in rest] == newest_first[2:] and end == ""
    token = current_token(jobs, mine[1].job_id)
    jobs.fail(mine[1].job_id, token, ErrorCode.NO_MEDIA, "nothing there")
    failed, _ = jobs.list_jobs("alice", JobState.FAILED, 10, "")
    assert [r.job_id for r in failed] == [mine[1].job_id]
    everyone, _ = jobs.list_jobs(None, None, 100, "")
    assert len(everyone) == 7 and {r.spec.user for r in everyone} == {"alice", "bob"}
    jobs.redis.delete(keys.export_job(mine[0].job_id))  # its record expired
    listed, _ = jobs.list_jobs("alice", None, 100, "")
    assert mine[0].job_id not in {r.job_id for r in listed}
    assert jobs.redis.zscore(keys.export_registry_of("alice"), mine[0].job_id) is None  # dropped lazily
    for bad_limit in (0, 1001):
        with pytest.raises(ValueError, match="bad limit"):
            jobs.list_jobs("alice", None, bad_limit, "")
    for bad_cursor in ("x", "1.5", "nan:abc", ":abc"):
        with pytest.raises(ValueError, match="bad cursor"):
            jobs.list_jobs("alice", None, 10, bad_cursor)


def test_every_transition_takes_its_keys_in_keys_and_a_jobs_keys_share_one_slot() -> None:
    """No script builds a key name itself (one did: 'resourced:export:' .. member), and a job's
    record, lease and uploads carry one hash tag, so Redis Cluster can run its transitions."""
    for name in dir(scripts):
        text = getattr(scripts, name)
        if name.isupper() and isinstance(text, str):
            assert "resourced" not in text and ".. ARGV" not in text and ".. member" not in text, name
    tags = {
        re.search(r"\{(.+?)\}", k).group(1)
        for k in (keys.export_job("j1"), keys.export_lease("j1"), keys.export_uploads("j1"))
    }  # type: ignore[union-attr]
    assert tags == {"j1"}


def test_admission_counts_the_users_jobs_under_any_key_prefix(
    jobs: ExportJobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-user limit prunes only jobs whose record is gone, whatever the key layout: a
    script that named the record itself ('resourced:export:' .. id) pruned live jobs here."""
    monkeypatch.setattr(keys, "PREFIX", "tenant2")
    assert keys.export_job("j").startswith("tenant2:")
    assert jobs.admit(spec(start=1000), "export.copy", 10, 1).outcome == "created"
    busy = jobs.admit(spec(start=2000), "export.copy", 10, 1)
    assert (busy.outcome, busy.detail) == ("busy", "user")
    jobs.redis.delete(keys.export_job(spec(start=1000).job_id))  # expired: its slot frees
    assert jobs.admit(spec(start=2000), "export.copy", 10, 1).outcome == "created"


@pytest.mark.parametrize("function", ["run_export", "cut_and_upload", "upload_poster"])
def test_nothing_defaults_to_running_unfenced(function: str) -> None:
    """A caller that forgets the fence gets a TypeError, never an export outside its job's fence."""
    parameter = inspect.signature(getattr(export_pipeline, function)).parameters["fence"]
    assert parameter.default is inspect.Parameter.empty
