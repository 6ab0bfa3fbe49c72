"""Job records: one job per identical request, atomic transitions, limits, failure reported once."""

from __future__ import annotations

import fakeredis
import pytest

from tasks.exports.spec import ErrorCode, ExportResult, ExportSpec
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore
from tasks.platform import keys
from tests.factories import current_token, store_spec


def spec(user: str = "alice", start: int = 1000) -> ExportSpec:
    return store_spec(user, start, f"exports/{user}")  # a key per user: no claim clash


RESULT = ExportResult(
    "dst", "us-east-1", "exports/x", "exports/x/clip.mp4", "exports/x/clip.jpg", "v1", 5000, 0, 10, "h264"
)


@pytest.fixture
def store() -> ExportJobStore:
    return ExportJobStore(fakeredis.FakeRedis(), job_ttl_s=3600)


def test_identical_requests_are_one_job(store: ExportJobStore) -> None:
    assert spec().job_id == spec().job_id
    assert spec().job_id != spec(start=1001).job_id
    assert store.admit(spec(), "q", 10, 10).outcome == "created"
    assert store.admit(spec(), "q", 10, 10).outcome == "exists"
    assert store.active_count() == 1


def test_lifecycle_and_stale_attempts(store: ExportJobStore) -> None:
    job = spec()
    token = store.admit(job, "q", 10, 10).detail
    assert token == current_token(store, job.job_id) and len(token) == 32
    assert store.claim(job.job_id, "1", "w") == "stale"  # an attempt number is no token
    assert store.claim(job.job_id, token, "w") == "running"
    assert store.progress(job.job_id, token, 0.5, "remuxing")
    record = store.get(job.job_id)
    assert record is not None and record.state is JobState.RUNNING and record.progress == 0.5
    assert store.finish(job.job_id, token, RESULT)
    assert not store.fail(job.job_id, token, ErrorCode.FAILED, "late")  # terminal states stay
    record = store.get(job.job_id)
    assert record is not None and record.state is JobState.DONE and record.result == RESULT
    assert store.active_count() == 0
    assert store.claim(job.job_id, token, "w") == "done"  # a redelivery does nothing


def test_failure_is_reported_once_then_a_fresh_attempt_starts(store: ExportJobStore) -> None:
    job = spec()
    token = store.admit(job, "q", 10, 10).detail
    store.fail(job.job_id, token, ErrorCode.NO_MEDIA, "nothing there")
    first = store.admit(job, "q", 10, 10)
    assert (first.outcome, first.detail) == ("exists", "failed")
    record = store.get(job.job_id)
    assert record is not None and record.error_code == 4
    second = store.admit(job, "q", 10, 10)
    assert second.outcome == "created" and second.detail != token
    record = store.get(job.job_id)
    assert record is not None and record.state is JobState.QUEUED and record.token == second.detail
    assert record.attempt == 1  # the attempts cap counts this admission's attempts only


def test_limits_global_and_per_user(store: ExportJobStore) -> None:
    assert store.admit(spec("a", 1), "q", 3, 2).outcome == "created"
    assert store.admit(spec("a", 2), "q", 3, 2).outcome == "created"
    busy = store.admit(spec("a", 3), "q", 3, 2)
    assert (busy.outcome, busy.detail) == ("busy", "user")
    assert store.admit(spec("b", 1), "q", 3, 2).outcome == "created"
    assert store.admit(spec("c", 1), "q", 3, 2).detail == "global"
    assert store.admit(spec("a", 1), "q", 3, 2).outcome == "exists"  # polls are never refused


def test_speed_is_a_moving_average(store: ExportJobStore) -> None:
    assert store.speed("copy") is None
    store.record_speed("copy", 10, 1)
    assert store.speed("copy") == pytest.approx(0.1)
    store.record_speed("copy", 10, 2)
    assert store.speed("copy") == pytest.approx(0.13)


def test_a_park_keeps_the_first_park_time_and_the_destination_claim(store: ExportJobStore) -> None:
    job = spec()
    token = store.admit(job, "q", 10, 10).detail
    assert store.claim(job.job_id, token, "w") == "running"
    assert store.park(job.job_id, token, keep_s=52 * 3600)
    first = store.get(job.job_id)
    assert first is not None and first.parked_at is not None and first.state is JobState.PARKED
    assert store.claim(job.job_id, token, "w") == "running"  # resumed: still archived, parked again
    assert store.park(job.job_id, token, keep_s=52 * 3600)
    again = store.get(job.job_id)
    assert again is not None and again.parked_at == first.parked_at  # the deadline does not move
    for key in (job.video_key, job.image_key):  # reserved as long as the record waits
        assert store.redis.ttl(keys.destination_claim(job.destination.bucket, key)) > 48 * 3600


def test_a_re_admission_waits_for_its_restore_from_scratch(store: ExportJobStore) -> None:
    job = spec()
    token = store.admit(job, "q", 10, 10).detail
    store.claim(job.job_id, token, "w")
    store.park(job.job_id, token, keep_s=3600)
    store.claim(job.job_id, token, "w")
    store.fail(job.job_id, token, ErrorCode.FAILED, "not restored in time")
    store.admit(job, "q", 10, 10)  # the failure answered
    store.admit(job, "q", 10, 10)
    record = store.get(job.job_id)
    assert record is not None and record.parked_at is None and record.attempt == 1


def test_marking_a_failure_reported_never_starts_a_new_attempt(store: ExportJobStore) -> None:
    job = spec()
    token = store.admit(job, "q", 10, 10).detail
    assert not store.mark_reported(job.job_id)  # only a failure is marked
    store.fail(job.job_id, token, ErrorCode.FAILED, "S3 refused the upload")
    assert store.mark_reported(job.job_id)
    assert store.mark_reported(job.job_id)  # a second held poll answering the same failure
    record = store.get(job.job_id)
    assert record is not None and record.state is JobState.FAILED and record.token == token
    assert store.admit(job, "q", 10, 10).outcome == "created"  # the next request starts afresh
