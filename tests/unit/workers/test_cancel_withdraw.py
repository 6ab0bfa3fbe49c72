"""A cancel that lands between an attempt's completed upload and its result: the attempt's
result is refused and it withdraws the versions it wrote (contract section 6: a cancelled export
leaves no object version). moto in-process, fakeredis."""

from __future__ import annotations

import fakeredis
import pytest

from tasks.exports.spec import ExportResult
from tasks.exports.store import ExportJobStore
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.factories import current_token, export_spec
from tests.helpers import moto_buckets
from workers.jobs.export_attempt import withdraw_if_cancelled

SPEC = export_spec()


def completed(s3: object, versioned: bool) -> ExportResult:
    """What an attempt uploaded before the cancel reached it: video and poster, as S3 answered."""
    if versioned:
        s3.put_bucket_versioning(Bucket="exports", VersioningConfiguration={"Status": "Enabled"})  # type: ignore[attr-defined]
    video = s3.put_object(Bucket="exports", Key=SPEC.video_key, Body=b"mp4")  # type: ignore[attr-defined]
    image = s3.put_object(Bucket="exports", Key=SPEC.image_key, Body=b"jpg")  # type: ignore[attr-defined]
    return ExportResult(
        "exports",
        "us-east-1",
        SPEC.destination.prefix,
        SPEC.video_key,
        SPEC.image_key,
        video["ETag"].strip('"'),
        1000,
        0,
        3,
        "h264",
        video_version_id=video.get("VersionId", "") if versioned else "",
        image_version_id=image.get("VersionId", "") if versioned else "",
    )


@pytest.mark.parametrize("versioned", [True, False])
def test_a_cancelled_attempts_completed_objects_are_withdrawn(versioned: bool) -> None:
    with moto_buckets("exports") as s3:
        jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
        token = jobs.admit(SPEC, "export.copy", 10, 10).detail
        assert jobs.claim(SPEC.job_id, token, "w") == "running"
        result = completed(s3, versioned)
        assert jobs.cancel(SPEC.job_id, 60)[0] == "cancelled"
        assert not jobs.finish(SPEC.job_id, token, result)  # the attempt's result is refused
        withdraw_if_cancelled(jobs, ObjectStore(Settings()), SPEC.job_id, result)
        left = s3.list_object_versions(Bucket="exports").get("Versions", [])
        assert left == []


def test_an_object_replaced_since_is_not_withdrawn() -> None:
    """Unversioned: only while the key still holds this attempt's object (its ETag)."""
    with moto_buckets("exports") as s3:
        jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
        token = jobs.admit(SPEC, "export.copy", 10, 10).detail
        assert jobs.claim(SPEC.job_id, token, "w") == "running"
        result = completed(s3, versioned=False)
        s3.put_object(Bucket="exports", Key=SPEC.video_key, Body=b"another writer's")
        assert jobs.cancel(SPEC.job_id, 60)[0] == "cancelled"
        withdraw_if_cancelled(jobs, ObjectStore(Settings()), SPEC.job_id, result)
        assert s3.get_object(Bucket="exports", Key=SPEC.video_key)["Body"].read() == b"another writer's"


def test_a_job_that_was_not_cancelled_keeps_its_objects() -> None:
    """A result refused for another reason (a newer attempt took over): its objects are the job's."""
    with moto_buckets("exports") as s3:
        jobs = ExportJobStore(fakeredis.FakeRedis(), 3600)
        jobs.admit(SPEC, "export.copy", 10, 10)
        assert jobs.claim(SPEC.job_id, current_token(jobs, SPEC.job_id), "w") == "running"
        result = completed(s3, versioned=True)
        withdraw_if_cancelled(jobs, ObjectStore(Settings()), SPEC.job_id, result)
        assert len(s3.list_object_versions(Bucket="exports")["Versions"]) == 2
