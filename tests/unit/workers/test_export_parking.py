"""A job waiting for a Glacier restore: it gives up with ErrorCode 6 once `restore_wait_s` has
passed since it first parked, and a resume never asks S3 again for a restore under way."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import pytest

from tasks.exports.spec import ErrorCode
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore
from tasks.platform import keys
from tasks.platform.settings import Settings
from tasks.storage import ObjectInfo
from tests.factories import current_token, export_spec
from workers.errors import SegmentsArchived
from workers.jobs import export_attempt

SPEC = export_spec()
ARCHIVED = ["live/cam/0.ts", "live/cam/1.ts"]


class ArchiveS3:
    """S3 as the restore path sees it: HEAD says which restores are under way; RestoreObject
    requests are recorded (each one is billed)."""

    def __init__(self, restoring: set[str]) -> None:
        self.restoring = restoring
        self.restores: list[str] = []

    def head(self, bucket: str, key: str, region: str | None = None) -> ObjectInfo:
        ongoing = 'ongoing-request="true"' if key in self.restoring else ""
        return ObjectInfo(key, 1, "e", "GLACIER", ongoing, {}, "video/mp2t", None)

    def restore(self, bucket: str, key: str, days: int, tier: str, region: str | None = None) -> None:
        self.restores.append(key)
        self.restoring.add(key)

    def version_ids(self, bucket: str, key: str, region: str | None = None) -> list[str]:
        """The job's destination keys (looked at when it ends without a clip): nothing there."""
        return []


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> ExportJobStore:
    def run_export(*_: Any, **__: Any) -> None:
        raise SegmentsArchived(list(ARCHIVED))  # still in archival storage at every look

    monkeypatch.setattr(export_attempt, "run_export", run_export)
    store = ExportJobStore(fakeredis.FakeRedis(), job_ttl_s=3600)
    store.admit(SPEC, "export.copy", 10, 10)
    return store


def resume(jobs: ExportJobStore, s3: ArchiveS3, settings: Settings) -> export_attempt.JobOutcome:
    token = current_token(jobs, SPEC.job_id)
    return export_attempt.process_export(SPEC.job_id, token, jobs, s3, settings, "w")  # type: ignore[arg-type]


def test_a_resume_asks_only_for_restores_not_under_way(jobs: ExportJobStore) -> None:
    s3 = ArchiveS3(restoring={ARCHIVED[0]})  # someone asked for this one already
    settings = Settings(restore_poll_s=0)  # looks back to back, as the countdown would space them
    assert resume(jobs, s3, settings).state == "restoring"
    assert s3.restores == [ARCHIVED[1]]
    assert resume(jobs, s3, settings).state == "restoring"  # the next poll: both under way now
    assert s3.restores == [ARCHIVED[1]]


def test_a_restore_that_never_completes_ends_the_job_with_error_6(jobs: ExportJobStore) -> None:
    s3 = ArchiveS3(restoring=set())
    settings = Settings(restore_wait_s=3600, restore_poll_s=0)
    assert resume(jobs, s3, settings).state == "restoring"
    record = jobs.get(SPEC.job_id)
    assert record is not None and record.state is JobState.PARKED and record.parked_at is not None
    first_park = record.parked_at
    assert resume(jobs, s3, settings).state == "restoring"  # within the wait: parked again
    jobs.redis.hset(keys.export_job(SPEC.job_id), "parked_at", f"{first_park - 3601:.6f}")  # 1 h on
    outcome = resume(jobs, s3, settings)
    assert (outcome.state, outcome.error_code) == ("failed", int(ErrorCode.FAILED))
    record = jobs.get(SPEC.job_id)
    assert record is not None and record.state is JobState.FAILED
    assert record.error_code == int(ErrorCode.FAILED) and "still not restored after 1 h" in record.error


def test_a_parked_job_resumes_only_where_the_limits_leave_room(jobs: ExportJobStore) -> None:
    """Parked, it holds no slot; the slot is taken meanwhile: its resume waits instead of
    running beyond RESOURCED_MAX_ACTIVE_EXPORTS(_PER_USER)."""
    settings = Settings(max_active_exports=1, max_active_exports_per_user=1, restore_poll_s=0)
    s3 = ArchiveS3(set())
    assert resume(jobs, s3, settings).state == "restoring"  # parked: its slot is free
    other = export_spec(start_ms=60_000)
    assert jobs.admit(other, "export.copy", 1, 1).outcome == "created"
    jobs.redis.zadd(keys.PARKED_EXPORTS, {SPEC.job_id: 1})  # as if nobody had looked for long
    assert resume(jobs, s3, settings).state == "busy"  # no room: still parked, nothing run
    record = jobs.get(SPEC.job_id)
    assert record is not None and record.state is JobState.PARKED and jobs.active_count() == 1
    assert jobs.parked_since(time.time() - 60) == []  # looked at now: the reaper sends nothing more
    jobs.fail(other.job_id, current_token(jobs, other.job_id), ErrorCode.FAILED, "done")
    assert resume(jobs, s3, settings).state == "restoring"  # room again: it ran (and re-parked)


def test_a_parked_job_that_never_finds_room_ends_at_its_restore_deadline(jobs: ExportJobStore) -> None:
    settings = Settings(
        max_active_exports=1, max_active_exports_per_user=1, restore_wait_s=3600, restore_poll_s=0
    )
    s3 = ArchiveS3(set())
    assert resume(jobs, s3, settings).state == "restoring"
    assert jobs.admit(export_spec(start_ms=60_000), "export.copy", 1, 1).outcome == "created"
    jobs.redis.hset(keys.export_job(SPEC.job_id), "parked_at", f"{time.time() - 7200:.6f}")
    outcome = resume(jobs, s3, settings)
    assert (outcome.state, outcome.error_code) == ("failed", ErrorCode.FAILED)
    record = jobs.get(SPEC.job_id)
    assert record is not None and record.state is JobState.FAILED and "no room to resume" in record.error


def test_a_second_chain_of_resume_messages_dies_out(jobs: ExportJobStore) -> None:
    """A backlog made the reaper send a parked job again while its countdown was still queued: the
    resume arriving soon after another one looked is dropped, and sends no countdown of its own."""
    settings = Settings(restore_poll_s=300)
    s3 = ArchiveS3(set())
    assert resume(jobs, s3, settings).state == "restoring"  # the first look parks it
    assert resume(jobs, s3, settings).state == "duplicate"  # seconds later: another chain
    assert s3.restores == ARCHIVED  # that one asked S3 for nothing
    jobs.redis.hset(keys.export_job(SPEC.job_id), "updated_at", f"{time.time() - 300:.6f}")
    assert resume(jobs, s3, settings).state == "restoring"  # its own chain, a poll later, looks
