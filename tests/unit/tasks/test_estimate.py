"""TimeWait from the work ahead, the slots alive and the measured speed."""

from __future__ import annotations

import fakeredis

from tasks import estimate
from tasks.jobs import ExportSpec, ExportType, S3Location
from tasks.store import ExportJobStore


def spec(start: int, seconds: int = 60) -> ExportSpec:
    loc = S3Location("b", "us-east-1")
    return ExportSpec("u", loc, "p", start, seconds * 1000, ExportType.COPY, loc, "x.mp4")


def test_wait_grows_with_the_queue_and_shrinks_with_slots_and_progress() -> None:
    jobs = ExportJobStore(fakeredis.FakeRedis())
    jobs.record_speed("copy", 100, 10)  # measured: 0.1 s per media second
    for i in range(4):
        jobs.admit(spec(i), "q", 100, 100)
    first, last = jobs.get(spec(0).job_id), jobs.get(spec(3).job_id)
    assert first is not None and last is not None
    assert estimate.wait_for(jobs, first, slots=1) == 8  # its own 6 s + 2 s overhead
    assert estimate.wait_for(jobs, last, slots=1) == 26  # three jobs ahead, one slot
    assert estimate.wait_for(jobs, last, slots=3) == 14  # the same work over three slots
    jobs.claim(first.job_id, 1, "w")
    jobs.progress(first.job_id, 1, 0.5, "remuxing")
    running = jobs.get(first.job_id)
    assert running is not None and estimate.wait_for(jobs, running, slots=1) == 5


def test_default_speed_before_anything_was_measured() -> None:
    jobs = ExportJobStore(fakeredis.FakeRedis())
    assert estimate.wait_for_new(jobs, spec(0, seconds=100), slots=1) == 100 * 0.05 + 2.0
