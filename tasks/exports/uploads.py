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
from tasks.exports.store import ExportJobStore, JobRecord
from tasks.storage import AccessDenied, ObjectNotFound, ObjectStore, WriteConflict
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


def take_back(jobs: ExportJobStore, store: ObjectStore, record: JobRecord) -> tuple[int, int]:
    """What ending a job without its clip undoes, in this order: the uploads its attempts
    recorded are aborted (none can record another now), then what they had completed is
    withdrawn. Returns (aborted, withdrawn); raises StorageError for the caller to log."""
    aborted = abort_recorded_uploads(jobs, store, record.job_id)
    return aborted, withdraw_completed(store, record.spec, record.objects_mark)


def withdraw_completed(store: ObjectStore, spec: ExportSpec, mark: str) -> int:
    """Delete every version at the job's keys that an admission's attempts wrote (its `mark`,
    JobRecord.objects_mark, begins their JOB_META; never another export's or writer's object),
    current or not: a writer may have put a version on top since. Returns how many. Call it once
    the admission has ended without its result and after abort_recorded_uploads, so that no
    attempt can complete another object. Two withdrawals racing (the cancel's and the fenced
    attempt's) are fine: a version the other deleted first is skipped."""
    if not mark:
        raise ValueError("an admission's mark is needed: an empty one would match every object")
    dest = spec.destination
    withdrawn = 0
    for key in spec.written_keys:
        for version_id, etag in _marked(store, dest.bucket, key, dest.region, mark + "/"):
            # A key without versions: only while it still holds that object (conditional
            # DELETE, unless RESOURCED_S3_CONDITIONAL_WRITES is off), so another export
            # completing there meanwhile keeps its object.
            guard = etag if version_id is None and store.settings.s3_conditional_writes else None
            try:
                store.delete(dest.bucket, key, dest.region, version_id, guard)
            except (WriteConflict, ObjectNotFound):  # replaced, or deleted by the other withdrawal
                continue
            withdrawn += 1
            log.warning("withdrew an ended job's object", extra={"job_id": spec.job_id, "key": key})
    return withdrawn


def _marked(
    store: ObjectStore, bucket: str, key: str, region: str, mine: str
) -> list[tuple[str | None, str]]:
    """(version id, ETag) of each version at `key` whose JOB_META begins with `mine`; a version id
    None for the object of a key without versions ("null"). Where listing versions is not
    allowed, the current object only."""
    try:
        seen = [store.look(bucket, key, region, _real(v)) for v in store.version_ids(bucket, key, region)]
    except AccessDenied:
        seen = [store.look(bucket, key, region)]
    return [
        (_real(info.version_id), info.etag)
        for info in seen
        if info is not None and info.metadata.get(JOB_META, "").startswith(mine)
    ]


def _real(version_id: str | None) -> str | None:
    """S3 names the object of a key without versions "null": no version id to send."""
    return None if version_id in (None, "null") else version_id
