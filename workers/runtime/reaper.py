"""Jobs whose attempt lost its lease (worker killed, frozen, cut off from Redis) go back to the
queue as a new attempt, up to a cap; a job queued so long that its message may have been lost
is sent again under the same attempt (a long queue is not a lost worker: it costs no attempt). Every
worker runs this from its heartbeat thread under a Redis lock, so reaping needs no scheduler
process and survives any one node.

The reaper decides on expired leases only, never on how long ago progress was written: several
phases of an export (a decode check, the final upload, botocore's retries) write none.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import redis

from tasks.exports.outcomes import ATTEMPTS_EXHAUSTED, record_outcome
from tasks.exports.spec import ErrorCode
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore, JobRecord, new_token
from tasks.exports.uploads import abort_recorded_uploads, withdraw_completed
from tasks.platform import keys
from tasks.storage import ObjectStore, StorageError
from workers.runtime.export_callbacks import announce

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str, str], None]  # job_id, attempt token, queue


def reap(
    jobs: ExportJobStore,
    client: redis.Redis,
    enqueue: Enqueue,
    lost_queued_s: float,
    max_attempts: int,
    parked_quiet_s: float | None = None,
    *,
    uploads: ObjectStore,
) -> int:
    """Requeue (or, past `max_attempts`, fail) jobs without a live attempt; returns how many.
    With `parked_quiet_s`, a job parked for a restore that nobody looked at for that long (its
    countdown message held by a worker that died) is sent again under its own attempt. `uploads`
    aborts the recorded uploads of a job given up, before it ends (tasks/exports/uploads.py)."""
    lock = client.lock(keys.REAPER_LOCK, timeout=60, blocking_timeout=0)
    if not lock.acquire():
        return 0
    try:
        now = time.time()
        acted = 0
        for job_id in jobs.active_ids():
            record = jobs.get(job_id)
            if record is None:
                jobs.forget_active(job_id)  # expired record: free its admission slot
                continue
            reason = _why_orphaned(jobs, record, now, lost_queued_s)
            if reason and _act(jobs, client, enqueue, uploads, record, reason, max_attempts):
                acted += 1
        if parked_quiet_s is not None:
            acted += _resend_parked(jobs, enqueue, now - parked_quiet_s)
        return acted
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()


def _resend_parked(jobs: ExportJobStore, enqueue: Enqueue, before: float) -> int:
    sent = 0
    for job_id in jobs.parked_since(before):
        record = jobs.get(job_id)
        parked = record is not None and record.state is JobState.PARKED
        jobs.touch_parked(job_id, parked)
        if record is not None and parked:
            enqueue(job_id, record.token, record.queue)  # a duplicate is harmless: one start wins
            log.warning("restore poll sent again", extra={"job_id": job_id, "attempt": record.attempt})
            sent += 1
    return sent


def _why_orphaned(jobs: ExportJobStore, record: JobRecord, now: float, lost_queued_s: float) -> str:
    if record.state is JobState.RUNNING and not jobs.lease_held(record.job_id):
        return "lease expired"
    idle = now - (record.updated_at or record.created_at)
    if record.state is JobState.QUEUED and idle > lost_queued_s:
        return "message lost"
    return ""


def _act(
    jobs: ExportJobStore,
    client: redis.Redis,
    enqueue: Enqueue,
    uploads: ObjectStore,
    record: JobRecord,
    reason: str,
    max_attempts: int,
) -> bool:
    extra = {"job_id": record.job_id, "attempt": record.attempt, "worker": record.worker, "reason": reason}
    if record.state is JobState.QUEUED:
        resends = jobs.resend(record.job_id, record.token)
        if not resends:
            return False  # claimed or ended meanwhile
        if resends > max_attempts:  # sent again and again, never taken: no worker serves its queue
            queued_h = (time.time() - record.created_at) / 3600
            message = f"no worker took the export from queue {record.queue!r} in {queued_h:.1f} h"
            _give_up(jobs, client, uploads, record, message, extra)
            return True
        enqueue(record.job_id, record.token, record.queue)  # a duplicate is harmless: one start wins
        log.warning("export message sent again", extra=extra)
        return True
    if record.attempts_made >= max_attempts:  # this admission's attempts, not earlier ones'
        message = f"gave up after {record.attempts_made} attempt(s): the last one's {reason} (worker lost)"
        return _give_up(jobs, client, uploads, record, message, extra)
    token = new_token()
    attempt = jobs.requeue(record.job_id, record.token, token)
    if not attempt:
        return False  # renewed or finished meanwhile
    enqueue(record.job_id, token, record.queue)
    log.warning("export requeued", extra={**extra, "attempt": attempt})
    return True


def _give_up(
    jobs: ExportJobStore,
    client: redis.Redis,
    uploads: ObjectStore,
    record: JobRecord,
    message: str,
    extra: dict[str, object],
) -> bool:
    """End the job as ErrorCode 6 with the reason and count it; False when it moved on. First the
    last attempt is fenced off (the job is held under the reaper's own token, still unanswered),
    then its recorded uploads are aborted, and only then is the client told 6: an attempt frozen
    between its fence check and its CompleteMultipartUpload can no longer complete after that
    answer. A reaper that dies in between leaves a running job without a lease, which the next
    pass handles like any lost attempt. Its claims go back with the end."""
    mine = new_token()
    if not jobs.requeue(record.job_id, record.token, mine, hold=True):
        return False  # renewed, started or ended meanwhile
    abort_recorded_uploads(jobs, uploads, record.job_id)
    if not jobs.fail(record.job_id, mine, ErrorCode.FAILED, message, unless_leased=True):
        return False
    try:  # a poster its last attempt completed before it was lost
        withdraw_completed(uploads, record.spec, record.objects_mark)
    except StorageError as exc:
        log.error("could not withdraw a given-up job's objects", extra={**extra, "reason": str(exc)})
    wall = time.time() - (record.started_at or record.created_at)
    record_outcome(client, int(record.spec.export_type), ATTEMPTS_EXHAUSTED, wall, 0, None)
    log.error("export given up", extra={**extra, "reason": message})
    ended = jobs.get(record.job_id)
    if ended is not None:
        announce(ended, client=client)  # its CallbackUrl learns the end like any other
    return True
