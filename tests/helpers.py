"""Building requests the way real clients do, and putting recordings into S3."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from app.client import storage_info_b64
from scripts.samples import SampleRecording, SampleSpec, generate_recording


def storage_info(
    ts_bucket: str, mp4_bucket: str | None = None, region: str = "us-east-1", root: str = ""
) -> str:
    return storage_info_b64(ts_bucket, mp4_bucket, region, root)


def export_body(session: str, user: str, start_pos: int, duration: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_ServiceName": "resourced",
        "_UrlPath": "/resource/v1/i/export-to-s3dir",
        "_Version": 1,
        "ServiceCaller": "mma",
        "StartPos": start_pos,
        "StartTime": "0",
        "Duration": duration,
        "PeerId": "peer-1",
        "LivePath": "live/cam1",
        "FileName": "clip",
        "SessionId": session,
        "export_type": 0,
        "storage_info": storage_info("archive", "exports"),
        "userid": user,
    }
    body.update(overrides)
    return body


def restart_at_new_size(
    root: Path, big_s: int, small_s: int, pdt_ms: int, fps: int = 25
) -> list[SampleRecording]:
    """An encoder restart at a new resolution, as a playlist per run placed by PROGRAM-DATE-TIME:
    `big_s` of noise-like 640x360 at 20 Mbit/s (so a copy's streaming upload ships media parts
    before it meets the change), then `small_s` of 320x180. Frame indices run on across both."""
    first = SampleSpec(
        seconds=big_s, width=640, height=360, bit_rate=20_000_000, noise=True, segment_prefix="a"
    )
    second = SampleSpec(
        seconds=small_s,
        width=320,
        height=180,
        segment_prefix="b",
        first_frame_index=big_s * fps,
        pts_start=100 * 90_000,
        program_date_time_ms=pdt_ms + big_s * 1000,
    )
    return [
        generate_recording(root, first, playlist_name="hour1.m3u8"),
        generate_recording(root, second, playlist_name="hour2.m3u8"),
    ]


def upload_recording(client: Any, bucket: str, prefix: str, recording: SampleRecording) -> None:
    """Put a generated recording's playlist and segments under s3://bucket/prefix/."""
    for path in sorted(Path(recording.directory).iterdir()):
        if path.suffix in {".ts", ".m3u8"}:
            client.upload_file(str(path), bucket, f"{prefix}/{path.name}")


@contextmanager
def moto_buckets(*buckets: str) -> Iterator[Any]:
    """An in-process S3 (moto) holding these empty buckets; yields its boto3 client."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield client
