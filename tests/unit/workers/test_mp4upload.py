"""The streamed upload's object is a faststart MP4, byte-exact in media, over several parts;
the >4 GB fallback re-lays it out locally instead."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from scripts.samples import SampleRecording, SampleSpec, generate_recording
from tasks.jobs import ExportSpec, ExportType, S3Location
from tasks.settings import Settings
from tasks.storage import ObjectStore
from tests.helpers import upload_recording
from tests.media import ffmpeg_decode_errors, frame_indices, moov_before_mdat
from workers.jobs.export_pipeline import run_export
from workers.media.mp4_boxes import LayoutError, shift_chunk_offsets

PDT_MS = 1_700_000_000_000


@pytest.fixture(scope="module")
def big_recording(tmp_path_factory: pytest.TempPathFactory) -> SampleRecording:
    """~12 MB: enough for the media to span several 5 MiB parts."""
    spec = SampleSpec(seconds=10, width=640, height=360, bit_rate=10_000_000, noise=True)
    return generate_recording(tmp_path_factory.mktemp("big"), spec)


@pytest.fixture
def s3(big_recording: SampleRecording) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="archive")
        client.create_bucket(Bucket="exports")
        upload_recording(client, "archive", "live/big", big_recording)
        yield client


def spec() -> ExportSpec:
    return ExportSpec(
        user="u",
        source=S3Location("archive", "us-east-1"),
        live_path="live/big",
        start_ms=PDT_MS,
        duration_ms=10_000,
        export_type=ExportType.COPY,
        destination=S3Location("exports", "us-east-1", "out"),
        video_name="big.mp4",
    )


def fetch(s3: Any, tmp_path: Path) -> Path:
    out = tmp_path / "got.mp4"
    s3.download_file("exports", "out/big.mp4", str(out))
    return out


def test_streamed_object_is_faststart_and_complete(s3: Any, tmp_path: Path) -> None:
    settings = Settings(upload_part_mib=5, work_dir=str(tmp_path))
    result = run_export(spec(), ObjectStore(settings), settings)
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
    run_export(spec(), ObjectStore(settings), settings)
    got = fetch(s3, tmp_path)
    assert moov_before_mdat(got)
    assert frame_indices(got) == list(range(250))
    assert ObjectStore(settings).pending_multipart_uploads("exports") == []


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
