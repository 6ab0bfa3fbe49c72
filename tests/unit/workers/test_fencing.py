"""Fenced exports against S3 (moto in-process, a versioned bucket) and job records (fakeredis):
a fenced-off attempt writes nothing, a new attempt aborts only earlier attempts' uploads, and
a video an earlier attempt completed is adopted, never uploaded twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from scripts.samples import SampleSpec, generate_recording, playlist_text
from tasks.exports.leases import AttemptLease, LeaseLost
from tasks.exports.outcomes import read_totals
from tasks.exports.spec import ErrorCode, S3Location
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore
from tasks.platform import keys
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore, StorageError
from tasks.tenancy.ownership import JOB_META
from tests.factories import current_token, export_spec
from tests.helpers import moto_buckets, upload_recording
from tests.media import frame_indices
from workers.errors import NoMedia
from workers.jobs import export_attempt
from workers.jobs.export_attempt import first_view, process_export
from workers.jobs.export_pipeline import run_export
from workers.jobs.fencing import LeaseKeeper, adopted, object_mark

PDT_MS = 1_700_000_000_000
SPEC = export_spec(start_ms=PDT_MS + 1000, destination=S3Location("exports", "us-east-1", "out/job"))


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[Any]:
    with moto_buckets("archive", "exports") as client:
        client.put_bucket_versioning(Bucket="exports", VersioningConfiguration={"Status": "Enabled"})
        upload_recording(
            client, "archive", "live/cam", generate_recording(tmp_path / "rec", SampleSpec(seconds=6))
        )
        yield client


@pytest.fixture
def jobs() -> ExportJobStore:
    return ExportJobStore(fakeredis.FakeRedis(), job_ttl_s=3600)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "work").mkdir()
    return Settings(work_dir=str(tmp_path / "work"), lease_ttl_s=30)


def versions(s3: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for version in s3.list_object_versions(Bucket="exports").get("Versions", []):
        found[version["Key"]] = found.get(version["Key"], 0) + 1
    return found


def admission(jobs: ExportJobStore) -> str:
    record = jobs.get(SPEC.job_id)
    assert record is not None
    return f"{SPEC.job_id}@{record.created_at:.6f}"


def take_over(jobs: ExportJobStore, token: str) -> str:
    """What the reaper does once the attempt holding `token` lost its lease: the new token."""
    jobs.redis.delete(keys.export_lease(SPEC.job_id))
    assert jobs.requeue(SPEC.job_id, token)
    return current_token(jobs, SPEC.job_id)


def test_an_attempt_fenced_off_mid_export_leaves_nothing(
    s3: Any, jobs: ExportJobStore, settings: Settings
) -> None:
    first = jobs.admit(SPEC, "export.copy", 10, 10).detail
    assert jobs.claim(SPEC.job_id, first, "w1") == "running"

    def report(step: str, fraction: float) -> None:
        if step == "uploading":  # frozen right before its final upload; another attempt took over
            take_over(jobs, first)

    with (
        LeaseKeeper(AttemptLease(jobs, SPEC.job_id, first, 30), 3600, admission(jobs)) as fence,
        pytest.raises(LeaseLost),
    ):
        run_export(SPEC, ObjectStore(settings), settings, report, fence=fence)
    assert versions(s3) == {}  # neither the video nor the poster
    assert s3.list_multipart_uploads(Bucket="exports").get("Uploads", []) == []  # its own were aborted


def test_a_new_attempt_aborts_earlier_uploads_so_the_old_one_can_never_complete(
    s3: Any, jobs: ExportJobStore, settings: Settings
) -> None:
    first = jobs.admit(SPEC, "export.copy", 10, 10).detail
    jobs.claim(SPEC.job_id, first, "w1")
    store = ObjectStore(settings)
    stale = store.start_multipart("exports", SPEC.video_key, "video/mp4")  # attempt 1, then frozen
    AttemptLease(jobs, SPEC.job_id, first, 30).record_upload(
        "exports", SPEC.video_key, "us-east-1", stale.upload_id, 3600
    )
    stale.upload_part(1, b"old bytes")
    second = take_over(jobs, first)
    outcome = process_export(SPEC.job_id, second, jobs, store, settings, "w2")
    assert outcome.state == "ready"
    # Attempt 1 wakes up: its upload is gone (S3 says NoSuchUpload; moto in-process, a KeyError).
    with pytest.raises((StorageError, KeyError)):
        stale.complete()
    assert versions(s3) == {SPEC.video_key: 1, SPEC.image_key: 1}
    assert s3.list_multipart_uploads(Bucket="exports").get("Uploads", []) == []


def test_a_video_an_earlier_attempt_completed_is_adopted_not_uploaded_again(
    s3: Any, jobs: ExportJobStore, settings: Settings, tmp_path: Path
) -> None:
    token = jobs.admit(SPEC, "export.copy", 10, 10).detail
    jobs.claim(SPEC.job_id, token, "w1")
    store = ObjectStore(settings)
    with LeaseKeeper(AttemptLease(jobs, SPEC.job_id, token, 30), 3600, admission(jobs)) as fence:
        first = run_export(SPEC, store, settings, fence=fence)  # uploads both, then is frozen
    second = take_over(jobs, token)
    assert not jobs.finish(SPEC.job_id, token, first)  # waking up, it cannot write its result
    assert process_export(SPEC.job_id, second, jobs, store, settings, "w2").state == "ready"
    record = jobs.get(SPEC.job_id)
    assert record is not None and record.state is JobState.DONE and record.result is not None
    assert record.result.version == first.version  # the one version there is
    assert versions(s3) == {SPEC.video_key: 1, SPEC.image_key: 1}
    s3.download_file("exports", SPEC.video_key, str(tmp_path / "clip.mp4"))
    assert frame_indices(tmp_path / "clip.mp4") == list(range(25, 100))
    assert read_totals(jobs.redis).counts == {("copy", "ready"): 1}


def test_a_redelivered_message_of_a_replaced_attempt_does_nothing(
    s3: Any, jobs: ExportJobStore, settings: Settings
) -> None:
    first = jobs.admit(SPEC, "export.copy", 10, 10).detail
    store = ObjectStore(settings)
    assert jobs.claim(SPEC.job_id, first, "w1") == "running"
    take_over(jobs, first)
    assert process_export(SPEC.job_id, first, jobs, store, settings, "w1").state == "stale"
    assert versions(s3) == {}
    assert read_totals(jobs.redis).counts == {}  # it never ran: no outcome of its own


def test_an_attempt_taken_over_mid_export_is_counted_as_fenced_off(
    s3: Any, jobs: ExportJobStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = jobs.admit(SPEC, "export.copy", 10, 10).detail
    progress = jobs.progress

    def frozen_then_taken_over(job_id: str, token: str, fraction: float, step: str) -> bool:
        if step == "uploading":  # frozen right before its final upload; the reaper moved on
            take_over(jobs, first)
        return progress(job_id, token, fraction, step)

    monkeypatch.setattr(jobs, "progress", frozen_then_taken_over)
    outcome = process_export(SPEC.job_id, first, jobs, ObjectStore(settings), settings, "w1")
    assert outcome.state == "fenced"
    assert versions(s3) == {}
    assert read_totals(jobs.redis).counts == {("copy", "lease_lost"): 1}


def test_only_the_same_admission_and_the_same_segments_are_ever_adopted(
    s3: Any, jobs: ExportJobStore, settings: Settings
) -> None:
    jobs.admit(SPEC, "export.copy", 10, 10)
    lease = AttemptLease(jobs, SPEC.job_id, current_token(jobs, SPEC.job_id), 30)
    fence = LeaseKeeper(lease, 3600, admission(jobs))
    later = LeaseKeeper(lease, 3600, f"{SPEC.job_id}@1.000000")  # the same request, admitted again
    mark = object_mark(fence, ["live/cam/0.ts", "live/cam/1.ts"])
    assert mark != object_mark(later, ["live/cam/0.ts", "live/cam/1.ts"])
    assert mark != object_mark(fence, ["live/cam/0.ts", "live/cam/1.ts", "live/cam/2.ts"])  # it grew
    store = ObjectStore(settings)
    store.put_bytes("exports", SPEC.video_key, b"x", "video/mp4", {JOB_META: mark})
    assert adopted(fence, store, "exports", SPEC.video_key, "us-east-1", mark) is not None
    other = object_mark(later, ["live/cam/0.ts", "live/cam/1.ts"])
    assert adopted(later, store, "exports", SPEC.video_key, "us-east-1", other) is None


def wait_until(check: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_the_keeper_renews_without_progress_and_notices_a_takeover(jobs: ExportJobStore) -> None:
    first = jobs.admit(SPEC, "export.copy", 10, 10).detail
    assert jobs.claim(SPEC.job_id, first, "w1", lease_ttl_s=1.5) == "running"
    lease_key = keys.export_lease(SPEC.job_id)
    with LeaseKeeper(AttemptLease(jobs, SPEC.job_id, first, 1.5), 3600, admission(jobs)) as keeper:
        wait_until(lambda: 0 < jobs.redis.pttl(lease_key) < 1200, "the lease never ran down")
        wait_until(lambda: jobs.redis.pttl(lease_key) > 1300, "the lease was never renewed")
        take_over(jobs, first)  # the reaper, had the lease lapsed
        wait_until(lambda: keeper._lost.is_set(), "the keeper never noticed")
        with pytest.raises(LeaseLost):
            keeper.raise_if_lost()  # the next progress report stops the attempt
        assert not jobs.redis.exists(lease_key)  # and it did not renew a lease that is not its own


def test_a_recording_that_grew_between_attempts_still_leaves_one_version(
    s3: Any, jobs: ExportJobStore, settings: Settings, tmp_path: Path
) -> None:
    """Attempt 1 cuts a live recording (4 s so far), uploads both objects and is frozen before
    its result; a segment is added meanwhile. Attempt 2 cuts what attempt 1 saw, so it adopts
    its objects: one version of each, the frames attempt 1 cut."""
    recording = generate_recording(tmp_path / "live", SampleSpec(seconds=6))
    live = export_spec(
        live_path="live/growing",
        start_ms=PDT_MS + 1000,
        duration_ms=5000,
        destination=S3Location("exports", "us-east-1", "out/live"),
    )
    upload_recording(s3, "archive", "live/growing", recording)
    playlist = "live/growing/" + recording.playlist.name
    so_far = playlist_text(recording.segments[:2], recording.spec.program_date_time_ms)
    s3.put_object(Bucket="archive", Key=playlist, Body=so_far.encode())
    one = jobs.admit(live, "export.copy", 10, 10).detail
    jobs.claim(live.job_id, one, "w1")
    store = ObjectStore(settings)
    token = f"{live.job_id}@{jobs.get(live.job_id).created_at:.6f}"  # type: ignore[union-attr]
    with LeaseKeeper(AttemptLease(jobs, live.job_id, one, 30), 3600, token) as fence:
        first = run_export(
            live, store, settings, fence=fence, indexed=lambda found: first_view(jobs, live, one, found)
        )
    s3.upload_file(str(recording.playlist), "archive", playlist)  # the recorder wrote segment 3
    jobs.redis.delete(keys.export_lease(live.job_id))
    assert jobs.requeue(live.job_id, one) == 2
    two = current_token(jobs, live.job_id)
    assert process_export(live.job_id, two, jobs, store, settings, "w2").state == "ready"
    record = jobs.get(live.job_id)
    assert record is not None and record.result is not None and record.result.version == first.version
    assert versions(s3) == {live.video_key: 1, live.image_key: 1}
    s3.download_file("exports", live.video_key, str(tmp_path / "clip.mp4"))
    assert frame_indices(tmp_path / "clip.mp4") == list(range(25, 100))  # up to 4 s, as first cut


def test_an_attempt_aborts_earlier_uploads_before_anything_else_even_with_no_media(
    s3: Any, jobs: ExportJobStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempt 1 began its upload and froze; the job failed (attempts exhausted) and was asked for
    again. The new admission's attempt finds no media, yet attempt 1 can no longer complete."""
    first = jobs.admit(SPEC, "export.copy", 10, 10).detail
    jobs.claim(SPEC.job_id, first, "w1")
    store = ObjectStore(settings)
    stale = store.start_multipart("exports", SPEC.video_key, "video/mp4")
    AttemptLease(jobs, SPEC.job_id, first, 30).record_upload(
        "exports", SPEC.video_key, "us-east-1", stale.upload_id, 3600
    )
    stale.upload_part(1, b"old bytes")
    jobs.redis.delete(keys.export_lease(SPEC.job_id))
    assert jobs.fail(SPEC.job_id, first, ErrorCode.FAILED, "gave up", unless_leased=True)
    jobs.mark_reported(SPEC.job_id)
    again = jobs.admit(SPEC, "export.copy", 10, 10)
    assert again.outcome == "created"

    def no_media(*_: Any, **__: Any) -> None:
        raise NoMedia("no recording covers the range")

    monkeypatch.setattr(export_attempt, "run_export", no_media)
    assert (
        process_export(SPEC.job_id, again.detail, jobs, store, settings, "w2").error_code
        == ErrorCode.NO_MEDIA
    )
    assert s3.list_multipart_uploads(Bucket="exports").get("Uploads", []) == []
    with pytest.raises((StorageError, KeyError)):
        stale.complete()
    assert versions(s3) == {}
