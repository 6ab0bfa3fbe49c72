"""The plain export function against S3 (moto in-process): what lands where, and what a failed
upload leaves behind (nothing)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import pytest

from scripts.samples import SampleSpec, generate_recording
from tasks.exports.spec import ErrorCode, ExportSpec, ExportType, S3Location
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore, TransientStorageError, Uploaded
from tests.factories import export_spec
from tests.helpers import moto_buckets, upload_recording
from tests.media import ffmpeg_decode_errors, first_frame_index, frame_indices
from workers.errors import ExportError, NoMedia
from workers.jobs import export_pipeline
from workers.jobs.export_pipeline import run_export
from workers.jobs.fencing import NO_JOB_FENCE
from workers.media.transcode import Transcoder

PDT_MS = 1_700_000_000_000


@pytest.fixture
def s3() -> Iterator[Any]:
    with moto_buckets("archive", "exports") as client:
        yield client


def spec(start: int, duration: int, live_path: str = "live/cam") -> ExportSpec:
    return export_spec(
        live_path=live_path,
        start_ms=start,
        duration_ms=duration,
        destination=S3Location("exports", "us-east-1", "out/job"),
    )


@pytest.fixture
def recording(s3: Any, tmp_path: Path) -> None:
    upload_recording(s3, "archive", "live/cam", generate_recording(tmp_path / "rec", SampleSpec(seconds=6)))


def test_export_uploads_video_and_first_frame(s3: Any, recording: None, tmp_path: Path) -> None:
    steps: list[str] = []
    settings = Settings(work_dir=str(tmp_path / "work"))
    (tmp_path / "work").mkdir()
    result = run_export(
        spec(PDT_MS + 1000, 3000),
        ObjectStore(settings),
        settings,
        lambda s, f: steps.append(s),
        fence=NO_JOB_FENCE,
    )
    assert (result.video_key, result.image_key, result.s3_dir) == (
        "out/job/clip.mp4",
        "out/job/clip.jpg",
        "out/job",
    )
    assert result.lack_ms == 0 and result.exported_ms == 3000
    s3.download_file("exports", "out/job/clip.mp4", str(tmp_path / "clip.mp4"))
    s3.download_file("exports", "out/job/clip.jpg", str(tmp_path / "clip.jpg"))
    assert frame_indices(tmp_path / "clip.mp4") == list(range(25, 100))
    assert first_frame_index(tmp_path / "clip.jpg") == 25
    assert steps[0] == "indexing" and "uploading" in steps
    assert list((tmp_path / "work").iterdir()) == []  # temporary files are gone


def test_a_range_after_the_recording_is_no_media(s3: Any, recording: None) -> None:
    with pytest.raises(NoMedia):
        run_export(spec(PDT_MS + 60_000, 3000), ObjectStore(Settings()), Settings(), fence=NO_JOB_FENCE)


@pytest.mark.parametrize(
    ("source", "destination", "named"),
    [("archive", "missing-dest", "the destination"), ("missing-src", "exports", "storage_info's ts entry")],
)
def test_a_bucket_that_does_not_exist_is_a_bad_request(
    s3: Any, recording: None, tmp_path: Path, source: str, destination: str, named: str
) -> None:
    """The request named it: ErrorCode 2 with the reason, not 6 'internal error'."""
    bad = replace(
        spec(PDT_MS + 1000, 2000),
        source=S3Location(source, "us-east-1"),
        destination=S3Location(destination, "us-east-1", "out"),
    )
    settings = Settings(work_dir=str(tmp_path))
    with pytest.raises(ExportError) as raised:
        run_export(bad, ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    assert raised.value.code is ErrorCode.BAD_REQUEST
    assert named in raised.value.message and "does not exist" in raised.value.message


def test_failed_upload_leaves_no_object_and_no_multipart(
    s3: Any, recording: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(upload_part_mib=5, work_dir=str(tmp_path))
    store = ObjectStore(settings)
    client = store.client("us-east-1")
    original = client.upload_part
    calls = {"n": 0}

    def flaky_upload_part(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] >= 2:
            raise ConnectionError("network cut mid-upload")
        return original(**kwargs)

    monkeypatch.setattr(client, "upload_part", flaky_upload_part)
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (12 * 1024 * 1024))  # three parts at 5 MiB
    with pytest.raises(TransientStorageError):
        store.upload_file(big, "exports", "out/big.mp4", "video/mp4")
    assert "Contents" not in s3.list_objects_v2(Bucket="exports", Prefix="out/")
    assert store.pending_multipart_uploads("exports") == []


def test_reads_only_the_recordings_playlists_and_the_covering_segments(
    s3: Any, recording: None, tmp_path: Path
) -> None:
    upload_recording(
        s3, "archive", "live/other", generate_recording(tmp_path / "other", SampleSpec(seconds=2))
    )
    s3.put_object(Bucket="archive", Key="live/cam/old/index.m3u8", Body=b"#EXTM3U\n")  # a subfolder's
    # No archive index (nothing listens on port 1), so every playlist read is counted.
    settings = Settings(work_dir=str(tmp_path), redis_url="redis://127.0.0.1:1/0")
    store = ObjectStore(settings)
    read: list[str] = []
    client = store.client("us-east-1")
    client.meta.events.register(
        "provide-client-params.s3.GetObject", lambda params, **_: read.append(params["Key"])
    )
    run_export(
        spec(PDT_MS + 2500, 1000), store, settings, fence=NO_JOB_FENCE
    )  # inside the second 2 s segment
    assert read == ["live/cam/index.m3u8", "live/cam/seg_00001.ts"]


def test_failed_streamed_upload_leaves_no_object_and_no_multipart(
    s3: Any, recording: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    settings = Settings(work_dir=str(work))
    store = ObjectStore(settings)
    client = store.client("us-east-1")

    def refuse(**_: Any) -> Any:
        raise ConnectionError("network cut while completing")

    monkeypatch.setattr(client, "complete_multipart_upload", refuse)
    with pytest.raises(Exception, match="network cut"):
        run_export(spec(PDT_MS, 4000), store, settings, fence=NO_JOB_FENCE)
    assert "Contents" not in s3.list_objects_v2(Bucket="exports", Prefix="out/job/clip.mp4")
    assert store.pending_multipart_uploads("exports") == []
    assert list(work.iterdir()) == []  # temporary files are gone on the failure path too


def test_a_splice_that_fails_its_decode_check_is_redone_as_a_full_encode(
    s3: Any,
    recording: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Build a really broken splice: the last picture of each copied GOP is written as an access
    unit that holds no picture (an H.264 access unit delimiter only), as a bad splice leaves a
    picture the decoder cannot show. The export must notice from the written file alone and
    deliver a full encode with every frame."""
    original = Transcoder._copy_gop
    damaged: list[int] = []

    def copy_damaged(self: Transcoder, gop: Any) -> bool:
        gop.packets[-1].packet = av.Packet(b"\x00\x00\x00\x01\x09\xf0")
        damaged.append(len(gop.packets))
        return original(self, gop)

    monkeypatch.setattr(Transcoder, "_copy_gop", copy_damaged)
    checked: list[bool] = []
    real_check = export_pipeline.decodes_cleanly
    monkeypatch.setattr(
        export_pipeline, "decodes_cleanly", lambda *a: checked.append(real_check(*a)) or checked[-1]
    )
    work = tmp_path / "work"
    work.mkdir()
    settings = Settings(work_dir=str(work), encode_preset="ultrafast")
    job = replace(spec(PDT_MS + 500, 4000), export_type=ExportType.H264)
    with caplog.at_level(logging.WARNING):
        result = run_export(job, ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    assert damaged, "the smart cut copied no GOP: nothing was spliced"
    assert checked == [False], "the damaged splice must be the one and only file checked"
    assert "smart cut rejected" in caplog.text
    s3.download_file("exports", result.video_key, str(tmp_path / "clip.mp4"))
    assert frame_indices(tmp_path / "clip.mp4") == list(range(12, 113))  # 112 is on screen at 4.48-4.52 s
    assert ffmpeg_decode_errors(tmp_path / "clip.mp4") == ""


VICTIM = b"\xff\xd8\xff\xe0 bob's own picture, uploaded to the image bed"


@pytest.mark.parametrize(
    ("taken", "when"),
    [
        ("out/job/clip.jpg", "before the poster completes"),
        ("out/job/clip.mp4", "before the poster completes"),
        ("out/job/clip.mp4", "after the poster completed"),
    ],
)
def test_a_users_object_landing_mid_export_is_never_replaced(
    s3: Any, recording: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken: str, when: str
) -> None:
    """Bob's object lands on a key the export checked minutes ago and found free: the export
    looks again right before each completion, fails with AUTH and aborts its uploads; Bob's
    object is byte for byte what he wrote, its only version."""
    s3.put_bucket_versioning(Bucket="exports", VersioningConfiguration={"Status": "Enabled"})
    settings = Settings(work_dir=str(tmp_path))

    def land() -> None:
        s3.put_object(Bucket="exports", Key=taken, Body=VICTIM, Metadata={"owner": "bob", "writer": "bob"})

    def report(step: str, fraction: float) -> None:
        if step == "uploading" and when.startswith("before"):
            land()

    real_poster = export_pipeline.upload_poster

    def poster_then_land(*args: Any, **kwargs: Any) -> Uploaded:
        uploaded = real_poster(*args, **kwargs)
        if when.startswith("after"):
            land()
        return uploaded

    monkeypatch.setattr(export_pipeline, "upload_poster", poster_then_land)
    with pytest.raises(ExportError) as raised:
        run_export(spec(PDT_MS + 1000, 3000), ObjectStore(settings), settings, report, fence=NO_JOB_FENCE)
    assert raised.value.code is ErrorCode.AUTH and taken in raised.value.message
    versions = s3.list_object_versions(Bucket="exports", Prefix=taken)["Versions"]
    assert len(versions) == 1 and s3.get_object(Bucket="exports", Key=taken)["Body"].read() == VICTIM
    assert s3.list_multipart_uploads(Bucket="exports").get("Uploads", []) == []
    videos = s3.list_object_versions(Bucket="exports", Prefix="out/job/clip.mp4").get("Versions", [])
    assert len(videos) == (1 if taken.endswith(".mp4") else 0)  # Bob's, or none: never the export's


def test_an_export_put_where_a_recording_lacks_a_segment_is_a_gap_not_media(s3: Any, tmp_path: Path) -> None:
    """Mallory exports her own clip to the name of a segment Alice's recording is missing (an
    fMP4 recording's `.mp4` segment, say); Alice's export must not splice it in: that stretch
    stays a gap."""
    recording = generate_recording(tmp_path / "rec", SampleSpec(seconds=6))
    upload_recording(s3, "archive", "live/cam", recording)
    planted = recording.directory / recording.segments[0].name  # media, marked as every export is
    s3.put_object(  # a recorder (or a tagging process) may well use an `owner` entry of its own
        Bucket="archive",
        Key=f"live/cam/{recording.segments[0].name}",
        Body=planted.read_bytes(),
        Metadata={"owner": "camera-7"},
    )
    s3.put_object(
        Bucket="archive",
        Key=f"live/cam/{recording.segments[1].name}",
        Body=planted.read_bytes(),
        Metadata={"owner": "mallory", "writer": "mallory", "resourced-job": "j@1/abc"},
    )
    settings = Settings(work_dir=str(tmp_path))
    result = run_export(spec(PDT_MS, 6000), ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    assert (result.exported_ms, result.lack_ms) == (4000, 2000)
    s3.download_file("exports", result.video_key, str(tmp_path / "clip.mp4"))
    assert frame_indices(tmp_path / "clip.mp4") == [*range(0, 50), *range(100, 150)]
