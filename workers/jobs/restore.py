"""Bringing archived objects back: RestoreObject where needed, then checking until S3 says
each restore is complete. Plain functions over the job record; the task layer schedules them."""

from __future__ import annotations

import hashlib
import logging
import time

from tasks.platform.webhooks import DeliveryFailed, UrlRefused, deliver, restore_result
from tasks.restore.store import FileCode, RestoreFile, RestoreJob
from tasks.storage import AccessDenied, ObjectNotFound, ObjectStore, StorageError, TransientStorageError

log = logging.getLogger(__name__)


def _settle(item: RestoreFile, code: FileCode, reason: str = "") -> None:
    item.state, item.code, item.reason = "settled", int(code), reason


def advance(job: RestoreJob, store: ObjectStore) -> bool:
    """Start or check each unsettled file's restore; True once every file is settled."""
    for item in job.files:
        if item.state == "settled":
            continue
        try:
            info = store.head(job.bucket, item.key, job.region)
            if not info.archived:
                _settle(item, FileCode.RESTORED)  # readable: never archived, or restore complete
            elif not info.restore_in_progress and item.state == "pending":
                store.restore(job.bucket, item.key, job.days, job.tier, job.region)
                item.state = "restoring"
            else:
                item.state = "restoring"
        except ObjectNotFound:
            _settle(item, FileCode.NOT_FOUND, "no such object")
        except TransientStorageError:
            raise  # the task retries the whole step; settled files stay settled
        except (AccessDenied, StorageError) as exc:
            _settle(item, FileCode.FAILED, str(exc))
    if job.settled and not job.settled_at:
        job.state, job.settled_at = "settled", time.time()
    return job.settled


def give_up(job: RestoreJob, reason: str) -> None:
    """Settle every file still open as failed with the reason: a job whose checks kept failing
    ends (and its client is told) instead of staying "restoring" for ever."""
    for item in job.files:
        if item.state != "settled":
            _settle(item, FileCode.FAILED, reason)
    if not job.settled_at:
        job.state, job.settled_at = "settled", time.time()


DELIVERY_BACKOFF_MAX_S = 3600  # a client that is down for hours is tried at least hourly


def retry_window_over(job: RestoreJob, window_hours: float, now: float | None = None) -> bool:
    """Whether the callback's retry window, counted from its first delivery attempt, has passed."""
    return window_over(float(str(job.attempts[0]["at"])) if job.attempts else None, window_hours, now)


def window_over(since: float | None, window_hours: float, now: float | None = None) -> bool:
    """Whether a delivery's retry window, counted from `since` (None: not started), has passed.

    The window is a deadline, not a number of retries: Celery's full jitter waits a random part
    of each backoff delay, so a fixed count of retries ends anywhere between a few minutes and
    twice the window. Retrying until the deadline covers the window whatever the jitter draws.
    PutRestoreResult counts from its first attempt, an export's callback from the job's end."""
    if since is None:
        return False
    return (time.time() if now is None else now) - since >= window_hours * 3600


def delivery_id(job: RestoreJob) -> str:
    """The webhook-id of a job's deliveries: the same on every retry (receivers de-duplicate by
    it) and different for another user's job with the same task_id, whose result must not be
    taken for a duplicate of this one."""
    return "msg_" + hashlib.sha256(job.ref.encode()).hexdigest()[:24]


def deliver_result(job: RestoreJob, secret: str, allowlist: tuple[str, ...], timeout_s: float) -> bool:
    """One delivery attempt, recorded on the job; True when the client acknowledged."""
    payload = restore_result(job.task_id, job.file_dir, job.file_codes(), job.code, job.message)
    attempt: dict[str, object] = {"at": round(time.time(), 3), "number": len(job.attempts) + 1}
    try:
        status = deliver(job.callback_url, payload, secret, allowlist, timeout_s, delivery_id(job))
    except (DeliveryFailed, UrlRefused) as exc:
        attempt.update(ok=False, error=str(exc))
        job.attempts.append(attempt)
        log.warning("callback not acknowledged", extra={"task_id": job.task_id, "reason": str(exc)})
        return False
    attempt.update(ok=True, status=status)
    job.attempts.append(attempt)
    job.state = "delivered"
    return True
