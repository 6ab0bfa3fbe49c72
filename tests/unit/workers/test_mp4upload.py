"""The streamed upload's object is a faststart MP4, byte-exact in media, over several parts;
the >4 GB fallback re-lays it out locally instead."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from scripts.samples import SampleRecording, SampleSpec, generate_recording
from tasks.exports.leases import AttemptLease, LeaseLost
from tasks.exports.spec import ExportSpec
from tasks.exports.store import ExportJobStore
from tasks.platform import keys
from tasks.platform.settings import Settings
from tasks.storage import MultipartUpload, ObjectStore, Uploaded, WriteCondition
from tests.factories import export_spec
from tests.helpers import moto_buckets, upload_recording
from tests.media import ffmpeg_decode_errors, frame_indices, moov_before_mdat
from workers.jobs.export_pipeline import run_export
from workers.jobs.fencing import NO_JOB_FENCE, LeaseKeeper, take_over
from workers.media.mp4_boxes import LayoutError, shift_chunk_offsets
from workers.transfer.file_upload import MIB, part_size

PDT_MS = 1_700_000_000_000


@pytest.fixture(scope="module")
def big_recording(tmp_path_factory: pytest.TempPathFactory) -> SampleRecording:
    """~12 MB: enough for the media to span several 5 MiB parts."""
    spec = SampleSpec(seconds=10, width=640, height=360, bit_rate=10_000_000, noise=True)
    return generate_recording(tmp_path_factory.mktemp("big"), spec)


@pytest.fixture
def s3(big_recording: SampleRecording) -> Iterator[Any]:
    with moto_buckets("archive", "exports") as client:
        upload_recording(client, "archive", "live/big", big_recording)
        yield client


def spec() -> ExportSpec:
    return export_spec(
        user="u", live_path="live/big", start_ms=PDT_MS, duration_ms=10_000, video_name="big.mp4"
    )


def fetch(s3: Any, tmp_path: Path) -> Path:
    out = tmp_path / "got.mp4"
    s3.download_file("exports", "out/big.mp4", str(out))
    return out


def test_streamed_object_is_faststart_and_complete(s3: Any, tmp_path: Path) -> None:
    settings = Settings(upload_part_mib=5, work_dir=str(tmp_path))
    result = run_export(spec(), ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    head = s3.head_object(Bucket="exports", Key="out/big.mp4")
    assert head["ContentLength"] == result.size_bytes
    assert int(head["ETag"].strip('"').rsplit("-", 1)[1]) >= 2  # it really went in several parts
    got = fetch(s3, tmp_path)
    assert moov_before_mdat(got)
    assert ffmpeg_decode_errors(got) == ""
    assert frame_indices(got) == list(range(250))


def test_relayout_failure_falls_back_to_a_local_faststart(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def overflow(moov: bytearray, delta: int) -> None:
        raise LayoutError("chunk offsets overflow 32 bits")

    monkeypatch.setattr("workers.transfer.streaming_upload.shift_chunk_offsets", overflow)
    settings = Settings(upload_part_mib=5, work_dir=str(tmp_path))
    run_export(spec(), ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    got = fetch(s3, tmp_path)
    assert moov_before_mdat(got)
    assert frame_indices(got) == list(range(250))
    assert ObjectStore(settings).pending_multipart_uploads("exports") == []


def test_the_fallback_upload_is_recorded_so_a_takeover_aborts_it(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attempt is frozen between its last fence check and completing the re-laid-out video; a
    newer attempt takes over and aborts the uploads recorded on the job. The fallback's upload is
    among them, so the frozen attempt can complete nothing: no video is ever written."""

    def overflow(moov: bytearray, delta: int) -> None:
        raise LayoutError("chunk offsets overflow 32 bits")

    monkeypatch.setattr("workers.transfer.streaming_upload.shift_chunk_offsets", overflow)
    settings = Settings(upload_part_mib=5, work_dir=str(tmp_path))
    store = ObjectStore(settings)
    jobs = ExportJobStore(fakeredis.FakeRedis(), job_ttl_s=3600)
    job = spec()
    first = jobs.admit(job, "export.copy", 10, 10).detail
    assert jobs.claim(job.job_id, first, "w1") == "running"
    record = jobs.get(job.job_id)
    assert record is not None
    admission = f"{job.job_id}@{record.created_at:.6f}"
    aborted: list[str] = []
    complete = MultipartUpload.complete

    def frozen_then_complete(upload: MultipartUpload, condition: WriteCondition | None = None) -> Uploaded:
        if upload.key == job.video_key:  # the reaper requeues; attempt 2 takes over first
            jobs.redis.delete(keys.export_lease(job.job_id))
            assert jobs.requeue(job.job_id, first) == 2
            second = jobs.get(job.job_id).token  # type: ignore[union-attr]
            newer = LeaseKeeper(AttemptLease(jobs, job.job_id, second, 30), 3600, admission)
            aborted.extend(u.upload_id for u in newer.earlier_uploads() if u.key == job.video_key)
            take_over(newer, store)
        return complete(upload, condition)

    monkeypatch.setattr(MultipartUpload, "complete", frozen_then_complete)
    with (
        LeaseKeeper(AttemptLease(jobs, job.job_id, first, 30), 3600, admission) as fence,
        pytest.raises((LeaseLost, KeyError)),  # S3 says NoSuchUpload (moto in-process: a KeyError)
    ):
        run_export(job, store, settings, fence=fence)
    assert len(aborted) == 2  # the streamed upload the layout error gave up, and the fallback's
    assert "Contents" not in s3.list_objects_v2(Bucket="exports", Prefix=job.video_key)
    assert store.pending_multipart_uploads("exports") == []


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def test_shift_chunk_offsets_patches_stco_and_co64_and_refuses_overflow() -> None:
    stco = _box(b"stco", struct.pack(">II", 0, 2) + struct.pack(">II", 100, 200))
    co64 = _box(b"co64", struct.pack(">II", 0, 1) + struct.pack(">Q", 2**40))
    moov = bytearray(_box(b"moov", _box(b"trak", _box(b"mdia", _box(b"minf", _box(b"stbl", stco + co64))))))
    shift_chunk_offsets(moov, 50)
    assert struct.pack(">II", 150, 250) in moov
    assert struct.pack(">Q", 2**40 + 50) in moov
    with pytest.raises(LayoutError):
        shift_chunk_offsets(moov, 2**32)


def test_fallback_parts_grow_to_stay_within_s3s_part_count() -> None:
    assert part_size(12 * MIB, 5 * MIB) == 5 * MIB
    assert part_size(12 * MIB, 1) == 5 * MIB  # never below S3's minimum part
    huge = 200 * 1024 * MIB  # 200 GiB in 8 MiB parts would be 25,600 parts
    assert part_size(huge, 8 * MIB) * 10_000 >= huge > 8 * MIB * 10_000
