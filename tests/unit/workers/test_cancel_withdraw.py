"""What an attempt completed before its job ended without it: a cancel landing between the
poster's completion and the video's (or between the video's completion and the result), a
failure, a new admission. The objects carrying the admission's mark are withdrawn (contract
section 1, Integrity: nothing of a cancelled job ends up in an object); an admission still going
or answered keeps them. moto in-process, fakeredis."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import pytest

from tasks.exports.store import ExportJobStore, JobRecord
from tasks.exports.uploads import withdraw_completed
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tasks.tenancy.ownership import JOB_META
from tests.factories import current_token, export_spec
from tests.helpers import moto_buckets
from workers.jobs.export_attempt import record_failure, withdraw_if_abandoned

SPEC = export_spec()


def running(jobs: ExportJobStore) -> tuple[JobRecord, str]:
    token = jobs.admit(SPEC, "export.copy", 10, 10).detail
    assert jobs.claim(SPEC.job_id, token, "w") == "running"
    record = jobs.get(SPEC.job_id)
    assert record is not None
    return record, token


def complete(s3: Any, record: JobRecord, versioned: bool) -> None:
    """What the attempt completed: its poster and its video, marked with its admission."""
    if versioned:
        s3.put_bucket_versioning(Bucket="exports", VersioningConfiguration={"Status": "Enabled"})
    mark = {JOB_META: f"{record.objects_mark}/0123456789abcdef"}
    s3.put_object(Bucket="exports", Key=SPEC.image_key, Body=b"jpg", Metadata=mark)
    s3.put_object(Bucket="exports", Key=SPEC.video_key, Body=b"mp4", Metadata=mark)


def versions(s3: Any) -> list[str]:
    return sorted(v["Key"] for v in s3.list_object_versions(Bucket="exports").get("Versions", []))


@pytest.mark.parametrize("versioned", [True, False])
def test_a_cancelled_attempts_completed_objects_are_withdrawn(versioned: bool) -> None:
    with moto_buckets("exports") as s3:
        jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
        record, _ = running(jobs)
        complete(s3, record, versioned)
        assert jobs.cancel(SPEC.job_id, 60)[0] == "cancelled"
        withdraw_if_abandoned(jobs, ObjectStore(Settings()), record)
        assert versions(s3) == []


def test_an_object_replaced_since_is_not_withdrawn() -> None:
    """Another writer's object at the key carries no mark of this admission: it stays."""
    with moto_buckets("exports") as s3:
        jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
        record, _ = running(jobs)
        complete(s3, record, versioned=False)
        s3.put_object(Bucket="exports", Key=SPEC.video_key, Body=b"another writer's")
        assert jobs.cancel(SPEC.job_id, 60)[0] == "cancelled"
        withdraw_if_abandoned(jobs, ObjectStore(Settings()), record)
        assert s3.get_object(Bucket="exports", Key=SPEC.video_key)["Body"].read() == b"another writer's"
        assert versions(s3) == [SPEC.video_key]


def test_an_admission_still_going_keeps_its_objects() -> None:
    """Fenced off by a newer attempt of the same admission: that attempt adopts these objects."""
    with moto_buckets("exports") as s3:
        jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
        record, token = running(jobs)
        complete(s3, record, versioned=True)
        jobs.requeue(SPEC.job_id, token, "f" * 32)
        withdraw_if_abandoned(jobs, ObjectStore(Settings()), record)
        assert versions(s3) == [SPEC.image_key, SPEC.video_key]


def test_a_replaced_admission_withdraws_what_it_wrote() -> None:
    """Cancelled, then admitted afresh by an identical request: the first admission's objects
    are not the new one's to adopt (another mark), so they go."""
    with moto_buckets("exports") as s3:
        jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
        first, _ = running(jobs)
        complete(s3, first, versioned=True)
        assert jobs.cancel(SPEC.job_id, 1)[0] == "cancelled"
        time.sleep(1.1)  # RESOURCED_CANCEL_HOLD_S past: an identical request starts afresh
        jobs.admit(SPEC, "export.copy", 10, 10)
        again = jobs.get(SPEC.job_id)
        assert again is not None and again.objects_mark != first.objects_mark
        withdraw_if_abandoned(jobs, ObjectStore(Settings()), first)
        assert versions(s3) == []


def test_an_empty_mark_is_refused() -> None:
    """An empty mark would match any object written by this service: never a default."""
    with pytest.raises(ValueError, match="mark is needed"):
        withdraw_completed(ObjectStore(Settings()), SPEC, "")


def test_current_token_helper_still_names_the_running_attempt() -> None:
    jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
    _, token = running(jobs)
    assert current_token(jobs, SPEC.job_id) == token


def marked_versions(s3: Any, mark: str) -> list[str]:
    """Keys of every version (current or not) whose JOB_META begins with the admission's mark."""
    found = []
    for version in s3.list_object_versions(Bucket="exports").get("Versions", []):
        meta = s3.head_object(Bucket="exports", Key=version["Key"], VersionId=version["VersionId"])[
            "Metadata"
        ]
        if meta.get(JOB_META, "").startswith(mark + "/"):
            found.append(version["Key"])
    return found


def test_a_job_that_times_out_after_its_poster_withdraws_it() -> None:
    """The task gave up (soft time limit, a crash, retries spent) after the poster went up."""
    with moto_buckets("exports") as s3:
        jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
        record, token = running(jobs)
        mark = {JOB_META: f"{record.objects_mark}/0123456789abcdef"}
        s3.put_object(Bucket="exports", Key=SPEC.image_key, Body=b"jpg", Metadata=mark)
        store = ObjectStore(Settings())
        assert (
            record_failure(jobs, store, SPEC.job_id, token, "export timed out after 1 s", "timed_out")
            == "failed"
        )
        assert marked_versions(s3, record.objects_mark) == []


def test_a_versioned_key_written_over_keeps_no_version_of_the_cancelled_job() -> None:
    """Another writer's version on top: the job's version below it is withdrawn, theirs stays."""
    with moto_buckets("exports") as s3:
        jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
        record, _ = running(jobs)
        complete(s3, record, versioned=True)
        assert jobs.cancel(SPEC.job_id, 60)[0] == "cancelled"
        s3.put_object(Bucket="exports", Key=SPEC.image_key, Body=b"someone else's")
        withdraw_if_abandoned(jobs, ObjectStore(Settings()), record)
        assert marked_versions(s3, record.objects_mark) == []
        assert s3.get_object(Bucket="exports", Key=SPEC.image_key)["Body"].read() == b"someone else's"


def test_an_unversioned_key_replaced_between_the_look_and_the_delete_keeps_the_new_object() -> None:
    """The same user's other export completes at the key right after the withdrawal looked: the
    conditional DELETE (If-Match the ETag it saw) leaves that export's object."""
    with moto_buckets("exports") as s3:
        jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
        record, _ = running(jobs)
        complete(s3, record, versioned=False)

        class Interleaved(ObjectStore):
            def head(
                self, bucket: str, key: str, region: str | None = None, version_id: str | None = None
            ) -> Any:
                info = super().head(bucket, key, region, version_id)
                if key == SPEC.video_key:  # export C completes right now
                    other = {JOB_META: "otherjob@1.000000/feedfacefeedface"}
                    s3.put_object(Bucket="exports", Key=key, Body=b"C's export", Metadata=other)
                return info

        assert jobs.cancel(SPEC.job_id, 60)[0] == "cancelled"
        withdraw_if_abandoned(jobs, Interleaved(Settings()), record)
        assert s3.get_object(Bucket="exports", Key=SPEC.video_key)["Body"].read() == b"C's export"
        assert versions(s3) == [SPEC.video_key]  # the poster, not replaced, was withdrawn


def test_two_withdrawals_racing_each_finish_every_key() -> None:
    """The cancel's withdrawal deletes the video right after the fenced attempt's looked at it:
    the attempt's conditional DELETE finds nothing and goes on to the poster."""
    with moto_buckets("exports") as s3:
        jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
        record, _ = running(jobs)
        complete(s3, record, versioned=False)

        class Raced(ObjectStore):
            def look(
                self, bucket: str, key: str, region: str | None = None, version_id: str | None = None
            ) -> Any:
                info = super().look(bucket, key, region, version_id)
                if key == SPEC.video_key:
                    s3.delete_object(Bucket="exports", Key=key)  # the other withdrawal, first
                return info

        assert jobs.cancel(SPEC.job_id, 60)[0] == "cancelled"
        withdraw_if_abandoned(jobs, Raced(Settings()), record)
        assert versions(s3) == []
