"""The body an export's job answers with once it ended: what a poll returns, and what its
CallbackUrl receives. One function for both, so a callback never says something a poll does not.

Web-free and media-free: the web's poll (app/api/export.py) and the worker's callback delivery
both build it from the job record and the ObjectStore's URL signer.
"""

from __future__ import annotations

from typing import Any, Protocol

from tasks.exports.spec import ErrorCode
from tasks.exports.states import JobState
from tasks.exports.store import JobRecord


class UrlSigner(Protocol):
    def url(self, bucket: str, key: str, region: str | None = None, version_id: str | None = None) -> str: ...


def progress_percent(record: JobRecord) -> int:
    """The job's progress as a whole percentage, clamped to 0-100 (a worker reports 0.0-1.0)."""
    return max(0, min(100, round(record.progress * 100)))


def ended_answer(store: UrlSigner, record: JobRecord) -> dict[str, Any] | None:
    """The final answer of a done, failed or cancelled job, with its JobId; None while it is active."""
    if record.state is JobState.DONE and record.result is not None:
        result = record.result
        return {
            "ErrorCode": int(ErrorCode.READY),
            "ErrorMessage": "ready",
            "TimeWait": 0,
            "JobId": record.job_id,
            "VideoPath": store.url(
                result.bucket, result.video_key, result.region, result.video_version_id or None
            )
            if result.video_key
            else "",  # a snapshot writes a picture and no video
            "ImagePath": store.url(
                result.bucket, result.image_key, result.region, result.image_version_id or None
            )
            if result.image_key
            else "",  # an audio-only clip has no picture
            "S3Dir": result.s3_dir,
            "Version": result.version,
            "LackLength": result.lack_ms,
        }
    if record.state is JobState.CANCELLED:
        return cancelled_answer(record.job_id)
    if record.state is JobState.FAILED:
        code = ErrorCode(record.error_code or ErrorCode.FAILED)
        return {
            "ErrorCode": int(code),
            "ErrorMessage": record.error or "export failed",
            "JobId": record.job_id,
        }
    return None


def cancelled_answer(job_id: str) -> dict[str, Any]:
    """A cancelled job's answer: nothing in it depends on the record, so its callback can still
    be delivered after the record's short cancel hold (RESOURCED_CANCEL_HOLD_S) has ended."""
    return {
        "ErrorCode": int(ErrorCode.CANCELLED),
        "ErrorMessage": "cancelled: the export was cancelled by its owner",
        "JobId": job_id,
    }
