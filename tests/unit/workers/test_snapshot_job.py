"""A snapshot job end to end over moto's in-process S3, where the recording is not whole: the
segment holding the instant missing from storage (a hole the playlist still lists), or every
segment in archival storage. Generated media whose pixels carry each frame's index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from scripts.samples import SampleRecording, SampleSpec, generate_recording, read_frame_index
from tasks.exports.spec import ErrorCode
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.factories import export_spec
from tests.helpers import moto_buckets, upload_recording
from workers.errors import ExportError, SegmentsArchived
from workers.jobs.export_pipeline import run_export
from workers.jobs.fencing import NO_JOB_FENCE

PDT_MS = 1_700_000_000_000


@pytest.fixture
def recording(tmp_path: Path) -> SampleRecording:
    return generate_recording(tmp_path / "rec", SampleSpec(seconds=6, audio_codec=None))


@pytest.fixture
def s3(recording: SampleRecording) -> Iterator[Any]:
    with moto_buckets("archive", "exports") as client:
        upload_recording(client, "archive", "live/cam", recording)
        yield client


def snapshot(s3: Any, tmp_path: Path, at_ms: int) -> int:
    """The frame index the snapshot at `at_ms` shows; raises ExportError as the job would."""
    settings = Settings(work_dir=str(tmp_path))
    spec = export_spec(start_ms=at_ms, duration_ms=1, snapshot_ms=at_ms, video_name="still.jpg")
    result = run_export(spec, ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    path = tmp_path / "still.jpg"
    path.write_bytes(s3.get_object(Bucket="exports", Key=result.image_key)["Body"].read())
    with av.open(str(path)) as image:
        return read_frame_index(next(image.decode(video=0)))


def test_an_instant_inside_a_missing_segment_has_no_picture(
    s3: Any, recording: SampleRecording, tmp_path: Path
) -> None:
    """Segment 2-4 s deleted: the last picture of 0-2 s is not on screen at 2.5 s (it was
    answered 5 with frame 49, 0.5 s stale). 4, saying what the recording covers."""
    s3.delete_object(Bucket="archive", Key=f"live/cam/{recording.segments[1].name}")
    assert snapshot(s3, tmp_path, PDT_MS + 1500) == 37  # the segment before the hole still answers
    with pytest.raises(ExportError) as refused:
        snapshot(s3, tmp_path, PDT_MS + 2500)
    assert refused.value.code is ErrorCode.NO_MEDIA
    assert "missing from storage" in refused.value.message
    assert "the recording covers" in refused.value.message
    assert snapshot(s3, tmp_path, PDT_MS + 4040) == 101  # and after it


def test_archived_segments_are_restored_first(s3: Any, recording: SampleRecording, tmp_path: Path) -> None:
    """As an export: ErrorCode 8 with the keys a restore needs, never a 6 "internal error"."""
    for segment in recording.segments:
        key = f"live/cam/{segment.name}"
        s3.copy_object(
            Bucket="archive", Key=key, CopySource={"Bucket": "archive", "Key": key}, StorageClass="GLACIER"
        )
    with pytest.raises(SegmentsArchived) as parked:
        snapshot(s3, tmp_path, PDT_MS + 2500)
    assert parked.value.code is ErrorCode.RESTORING
    assert sorted(parked.value.keys) == [f"live/cam/{s.name}" for s in recording.segments[:2]]


def test_an_export_of_missing_segments_says_what_the_recording_covers(
    s3: Any, recording: SampleRecording, tmp_path: Path
) -> None:
    s3.delete_object(Bucket="archive", Key=f"live/cam/{recording.segments[1].name}")
    settings = Settings(work_dir=str(tmp_path))
    spec = export_spec(start_ms=PDT_MS + 2200, duration_ms=1500)
    with pytest.raises(ExportError) as refused:
        run_export(spec, ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    assert refused.value.code is ErrorCode.NO_MEDIA
    assert "the recording covers" in refused.value.message


def test_an_archived_key_object_is_named_for_the_restore(
    s3: Any, recording: SampleRecording, tmp_path: Path
) -> None:
    """The segments are readable but their AES-128 key object is archived: the restore must
    bring back the key (it parked with nothing to restore, for RESOURCED_RESTORE_WAIT)."""
    playlist = (Path(recording.directory) / "index.m3u8").read_text()
    keyed = playlist.replace(
        "#EXT-X-PROGRAM-DATE-TIME", '#EXT-X-KEY:METHOD=AES-128,URI="k.key"\n#EXT-X-PROGRAM-DATE-TIME', 1
    )
    s3.put_object(Bucket="archive", Key="live/cam/index.m3u8", Body=keyed.encode())
    s3.put_object(Bucket="archive", Key="live/cam/k.key", Body=b"0" * 16, StorageClass="GLACIER")
    with pytest.raises(SegmentsArchived) as parked:
        snapshot(s3, tmp_path, PDT_MS + 2500)
    assert parked.value.keys == ["live/cam/k.key"]
