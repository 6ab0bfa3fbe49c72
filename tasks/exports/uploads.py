"""Aborting the multipart uploads a job's attempts recorded: what makes ending a job final.

An attempt checks its fence and then completes its upload: two requests, never atomic. So a
job that ends without its own attempt's say (the reaper giving up on it, its owner's cancel)
is first taken from every attempt (its token changed or it is no longer running) and then has
every recorded upload aborted: an attempt frozen between its check and its
CompleteMultipartUpload finds its upload gone, and nothing of it ever becomes an object.

What an attempt had already completed by then (the poster goes up before the video completes;
a video completed after the attempt's last check) is withdrawn: `withdraw_completed` deletes
the version at each of the job's keys that carries the admission's mark. After the abort no
attempt can complete another, so one look per key after it finds everything.
"""

from __future__ import annotations

import logging

from tasks.exports.leases import forget_upload, recorded_uploads
from tasks.exports.spec import ExportSpec
from tasks.exports.store import ExportJobStore
from tasks.storage import ObjectStore
from tasks.tenancy.ownership import JOB_META

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


def withdraw_completed(store: ObjectStore, spec: ExportSpec, mark: str) -> int:
    """Delete what an admission's attempts completed at the job's keys: the version each key
    holds now, if it carries the admission's `mark` (JobRecord.objects_mark; never another
    export's or writer's object). By version id where the bucket keeps versions, so no version
    of an ended job is left; returns how many. Call it once the admission has ended without its
    result and after abort_recorded_uploads, so that no attempt can complete another object."""
    if not mark:
        raise ValueError("an admission's mark is needed: an empty one would match every object")
    dest, mine = spec.destination, mark + "/"
    withdrawn = 0
    for key in spec.written_keys:
        info = store.look(dest.bucket, key, dest.region)
        if info is None or not info.metadata.get(JOB_META, "").startswith(mine):
            continue
        store.delete(dest.bucket, key, dest.region, info.version_id or None)
        withdrawn += 1
        log.warning("withdrew an ended job's object", extra={"job_id": spec.job_id, "key": key})
    return withdrawn
