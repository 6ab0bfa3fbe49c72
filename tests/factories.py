"""Test data built one way: an export of the test recording, naming only what a test changes."""

from __future__ import annotations

from typing import Any

from tasks.exports.spec import ExportSpec, ExportType, S3Location


def export_spec(**fields: Any) -> ExportSpec:
    """alice exports 3 s of s3://archive/live/cam from 1 s on, stream-copied, to
    s3://exports/out/clip.mp4, unless `fields` say otherwise."""
    defaults: dict[str, Any] = {
        "user": "alice",
        "source": S3Location("archive", "us-east-1"),
        "live_path": "live/cam",
        "start_ms": 1000,
        "duration_ms": 3000,
        "export_type": ExportType.COPY,
        "destination": S3Location("exports", "us-east-1", "out"),
        "video_name": "clip.mp4",
    }
    return ExportSpec(**{**defaults, **fields})


def store_spec(user: str, start: int, folder: str, duration_ms: int = 5000) -> ExportSpec:
    """A job of the job-store tests: `user`'s export of s3://src/cam/1 from `start` into
    s3://dst/`folder` (the folder decides which jobs share destination keys, hence claims)."""
    return export_spec(
        user=user,
        source=S3Location("src", "us-east-1"),
        live_path="cam/1",
        start_ms=start,
        duration_ms=duration_ms,
        destination=S3Location("dst", "us-east-1", folder),
    )


def current_token(jobs: Any, job_id: str) -> str:
    """The random token of the job's current attempt (what its task message carries)."""
    record = jobs.get(job_id)
    assert record is not None, f"job {job_id} has no record"
    return str(record.token)
