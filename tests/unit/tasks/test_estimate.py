"""TimeWait from the own queue's measured speed, the media the range holds, the work ahead on
that queue and the slots alive."""

from __future__ import annotations

import fakeredis

from tasks.exports import estimate
from tasks.exports.spec import ExportSpec, ExportType, S3Location
from tasks.exports.store import ExportJobStore
from tests.factories import current_token

COPY, CPU = "export.copy", "export.cpu"


def spec(start: int, seconds: int = 60, export_type: ExportType = ExportType.COPY) -> ExportSpec:
    loc = S3Location("b", "us-east-1")
    return ExportSpec("u", loc, "p", start, seconds * 1000, export_type, loc, "x.mp4")


def test_wait_grows_with_the_queue_and_shrinks_with_slots_and_progress() -> None:
    jobs = ExportJobStore(fakeredis.FakeRedis())
    jobs.record_speed(COPY, 100, 10)  # measured: 0.1 s per media second
    for i in range(4):
        jobs.admit(spec(i), COPY, 100, 100)
    first, last = jobs.get(spec(0).job_id), jobs.get(spec(3).job_id)
    assert first is not None and last is not None
    # Queued: back when it should have started and indexed its range (+2 s), not after all of it.
    assert estimate.wait_for(jobs, first, slots=1) == 2
    assert estimate.wait_for(jobs, last, slots=1) == 20  # three 6 s jobs ahead, one slot
    assert estimate.wait_for(jobs, last, slots=3) == 8  # the same work over three slots
    jobs.claim(first.job_id, current_token(jobs, first.job_id), "w")
    running = jobs.get(first.job_id)
    assert running is not None and estimate.wait_for(jobs, running, slots=1) in (5, 6)  # 6 s, just begun
    jobs.progress(first.job_id, current_token(jobs, first.job_id), 0.5, "remuxing")
    running = jobs.get(first.job_id)
    assert running is not None and estimate.wait_for(jobs, running, slots=1) == 3


def test_only_the_own_queue_counts_and_each_queue_has_its_speed() -> None:
    jobs = ExportJobStore(fakeredis.FakeRedis())
    jobs.record_speed(COPY, 100, 5)  # 0.05 s per media s
    jobs.record_speed(CPU, 100, 80)  # 0.8 s per media s
    for i in range(3):
        jobs.admit(spec(i, export_type=ExportType.H264), CPU, 100, 100)  # 3 long encodes queued first
    jobs.admit(spec(9), COPY, 100, 100)
    copy = jobs.get(spec(9).job_id)
    encode = jobs.get(spec(2, export_type=ExportType.H264).job_id)
    assert copy is not None and encode is not None
    assert estimate.wait_for(jobs, copy, slots=1) == 2  # the encodes are not ahead of it
    assert estimate.wait_for(jobs, encode, slots=1) == 98  # two 48 s encodes ahead, then 2 s to index


def test_the_indexed_coverage_replaces_the_requested_duration() -> None:
    jobs = ExportJobStore(fakeredis.FakeRedis())
    jobs.record_speed(COPY, 100, 5)
    three_hours = spec(0, seconds=3 * 3600)
    jobs.admit(three_hours, COPY, 100, 100)
    jobs.claim(three_hours.job_id, current_token(jobs, three_hours.job_id), "w")
    record = jobs.get(three_hours.job_id)
    assert record is not None and estimate.remaining(jobs, record, now=record.started_at) == 540
    jobs.cover(
        three_hours.job_id, current_token(jobs, three_hours.job_id), 60.0
    )  # the worker indexed the range: 60 s of recording
    jobs.cover(three_hours.job_id, "stale", 9999.0)  # a stale attempt's word does not count
    record = jobs.get(three_hours.job_id)
    assert record is not None and estimate.wait_for(jobs, record, slots=1) in (2, 3)  # 3 s, just begun


def test_a_running_job_counts_the_time_it_has_run_and_waits_at_least_a_second() -> None:
    jobs = ExportJobStore(fakeredis.FakeRedis())
    jobs.record_speed(COPY, 100, 10)
    jobs.admit(spec(0), COPY, 100, 100)
    jobs.claim(spec(0).job_id, current_token(jobs, spec(0).job_id), "w")
    record = jobs.get(spec(0).job_id)
    assert record is not None and record.started_at is not None
    assert estimate.remaining(jobs, record, now=record.started_at + 4) == 2  # 6 s in all, 4 gone
    assert estimate.remaining(jobs, record, now=record.started_at + 60) == 0  # overdue
    assert estimate.wait_for(jobs, record, slots=1) >= 1


def test_a_job_slower_than_its_queue_is_judged_by_its_own_pace() -> None:
    """Measured 0.1 s per media second (6 s for this job); this one is half done after 30 s:
    30 s more, not "any moment now" for the next 30 s."""
    jobs = ExportJobStore(fakeredis.FakeRedis())
    jobs.record_speed(CPU, 100, 10)
    encode = spec(0, export_type=ExportType.H265)
    jobs.admit(encode, CPU, 100, 100)
    jobs.claim(encode.job_id, current_token(jobs, encode.job_id), "w")
    jobs.progress(encode.job_id, current_token(jobs, encode.job_id), 0.5, "encoding")
    record = jobs.get(encode.job_id)
    assert record is not None and record.started_at is not None
    assert estimate.remaining(jobs, record, now=record.started_at + 30) == 30
    assert estimate.remaining(jobs, record, now=record.started_at + 1) == 3  # ahead of its queue: the queue's
    jobs.progress(encode.job_id, current_token(jobs, encode.job_id), 0.88, "uploading")
    record = jobs.get(encode.job_id)
    assert record is not None and record.started_at is not None
    assert estimate.remaining(jobs, record, now=record.started_at + 60) == 0  # cut done: nearly ready


def test_default_speed_before_anything_was_measured() -> None:
    jobs = ExportJobStore(fakeredis.FakeRedis())
    assert estimate.wait_for_new(jobs, spec(0, seconds=100), slots=1) == 100 * 0.05 + 2.0
    encode = spec(0, seconds=100, export_type=ExportType.H264)
    assert estimate.wait_for_new(jobs, encode, slots=1) == 100 * 0.5 + 2.0
    assert estimate.wait_for_new(jobs, encode, slots=1, queue="export.gpu") == 100 * 0.15 + 2.0
