"""Aborting the multipart uploads a job's attempts recorded: what makes ending a job final.

An attempt checks its fence and then completes its upload: two requests, never atomic. So a
job that ends without its own attempt's say (the reaper giving up on it, its owner's cancel)
is first taken from every attempt (its token changed or it is no longer running) and then has
every recorded upload aborted: an attempt frozen between its check and its
CompleteMultipartUpload finds its upload gone, and nothing of it ever becomes an object.
"""

from __future__ import annotations

import logging

from tasks.exports.leases import forget_upload, recorded_uploads
from tasks.exports.store import ExportJobStore
from tasks.storage import ObjectStore

log = logging.getLogger(__name__)


def abort_recorded_uploads(jobs: ExportJobStore, store: ObjectStore, job_id: str) -> int:
    """Abort every upload recorded on the job (one already completed or aborted is fine) and
    forget it; returns how many. Call it once no attempt can record another: after the job's
    token moved on (cancel, the reaper's hold) -- recording checks the token atomically."""
    uploads = recorded_uploads(jobs, job_id)
    for upload in uploads:
        store.abort_upload(upload.bucket, upload.key, upload.upload_id, upload.region)
        forget_upload(jobs, job_id, upload.upload_id)
        log.warning("aborted a recorded upload", extra={"job_id": job_id, "key": upload.key})
    return len(uploads)
