"""An upload belongs to one strategy: a copy export that turns into a re-encode after its
streaming upload already shipped parts aborts that upload and begins a new one, so no byte of the
abandoned copy reaches the object (issue 19: the re-encode's header over the copy's media)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.samples import SampleRecording
from tasks.exports.spec import ExportSpec
from tasks.platform.settings import Settings
from tasks.storage import MultipartUpload, ObjectStore, Uploaded, WriteCondition
from tests.factories import export_spec
from tests.helpers import moto_buckets, restart_at_new_size, upload_recording
from tests.media import ffmpeg_decode_errors, frame_indices
from workers.jobs.export_pipeline import run_export
from workers.jobs.fencing import NoJobFence
from workers.media import remux

PDT_MS = 1_700_000_000_000
FPS = 25
BIG_S, SMALL_S = 8, 2  # 8 s at 20 Mbit/s: ~19 MiB, parts 2 and 3 ship before the change


@pytest.fixture(scope="module")
def resized(tmp_path_factory: pytest.TempPathFactory) -> list[SampleRecording]:
    """8 s of 20 Mbit/s 640x360 (~19 MiB: parts 2 and 3 ship before the copy meets the change),
    then 2 s of 320x180."""
    return restart_at_new_size(tmp_path_factory.mktemp("resized"), BIG_S, SMALL_S, PDT_MS, FPS)


@pytest.fixture
def s3(resized: list[SampleRecording]) -> Iterator[Any]:
    with moto_buckets("archive", "exports") as client:
        upload_recording(client, "archive", "live/resized", resized[0])
        yield client


def spec() -> ExportSpec:
    return export_spec(
        user="u",
        live_path="live/resized",
        start_ms=PDT_MS,
        duration_ms=(BIG_S + SMALL_S) * 1000,
        video_name="resized.mp4",
    )


class Watched(MultipartUpload):
    """A multipart upload that notes which parts it sent and whether it was aborted/completed."""

    def __init__(self, inner: MultipartUpload) -> None:
        super().__init__(inner.client, inner.bucket, inner.key, inner.upload_id)
        self.sent: list[int] = []
        self.aborted = self.completed = False

    def upload_part(self, number: int, data: bytes) -> None:
        super().upload_part(number, data)
        self.sent.append(number)

    def complete(self, condition: WriteCondition | None = None) -> Uploaded:
        uploaded = super().complete(condition)
        self.completed = True
        return uploaded

    def abort(self) -> None:
        self.aborted = True
        super().abort()


class CountingStore(ObjectStore):
    """The real store; every multipart upload it starts is watched."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.uploads: list[Watched] = []

    def start_multipart(self, *args: Any, **kwargs: Any) -> MultipartUpload:
        upload = Watched(super().start_multipart(*args, **kwargs))
        self.uploads.append(upload)
        return upload


class RecordingFence(NoJobFence):
    """No other attempt, but the uploads the export records on its job are kept."""

    def __init__(self) -> None:
        self.recorded: list[str] = []

    def record_upload(self, bucket: str, key: str, region: str, upload_id: str) -> None:
        self.recorded.append(upload_id)


def test_a_copy_that_becomes_a_re_encode_aborts_the_upload_that_shipped_its_parts(
    s3: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(upload_part_mib=5, work_dir=str(tmp_path), encode_preset="ultrafast")
    store = CountingStore(settings)
    real_check = remux.check_same_params

    def once_parts_are_up(first: Any, segment: Any) -> None:
        """The change is met only once the copy's upload has sent a media part: the muxer can
        outrun the upload's watcher, and the case under test is the one where it did not."""
        if segment.segment.key.rsplit("/", 1)[-1].startswith("b"):
            deadline = time.monotonic() + 20
            while not (store.uploads and store.uploads[0].sent) and time.monotonic() < deadline:
                time.sleep(0.02)
        real_check(first, segment)

    monkeypatch.setattr(remux, "check_same_params", once_parts_are_up)
    fence = RecordingFence()
    job = spec()
    with caplog.at_level(logging.WARNING):
        result = run_export(job, store, settings, fence=fence)
    videos = [u for u in store.uploads if u.key == job.video_key]
    assert len(videos) == 2, "the copy's upload and the re-encode's own"
    copy, encode = videos
    assert copy.sent and min(copy.sent) >= 2, "the copy's media parts were shipped before the change"
    assert copy.aborted and not copy.completed
    assert encode.completed and not encode.aborted
    assert [u for u in store.uploads if u.aborted] == [copy], "exactly one aborted upload"
    assert caplog.text.count("upload aborted") == 1
    assert fence.recorded[:1] == [copy.upload_id] and encode.upload_id in fence.recorded
    assert store.pending_multipart_uploads("exports") == []
    got = tmp_path / "got.mp4"
    s3.download_file("exports", job.video_key, str(got))
    assert s3.head_object(Bucket="exports", Key=job.video_key)["ContentLength"] == result.size_bytes
    assert ffmpeg_decode_errors(got) == ""
    assert frame_indices(got) == list(range((BIG_S + SMALL_S) * FPS))
    assert result.lack_ms == 0
