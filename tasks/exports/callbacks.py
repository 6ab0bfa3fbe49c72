"""An export's CallbackUrl: where the job's final answer is POSTed when it ends.

The URL is not part of the job's identity (two clients polling one job are one job), so it is
kept beside the job record: a request that carries a CallbackUrl sets it, replacing the one an
earlier identical request named; a request without one leaves it. The job's end is announced to
the URL stored at that moment, once per end, under one webhook-id across retries.
"""

from __future__ import annotations

import hashlib
from typing import Any

import redis

from tasks.exports.states import JobState
from tasks.exports.store import JobRecord
from tasks.platform import keys
from tasks.platform.celery_app import Queue

TASK_NAME = "resourced.export.callback"  # the delivery task, on the callback queue


def remember(client: redis.Redis, job_id: str, url: str, ttl_s: int) -> None:
    """Where this job's end is announced (the latest request's URL wins)."""
    client.set(keys.export_callback(job_id), url, ex=ttl_s)


def url_of(client: redis.Redis, job_id: str) -> str:
    raw = client.get(keys.export_callback(job_id))
    return raw.decode() if isinstance(raw, bytes) else str(raw or "")


def end_marker(record: JobRecord) -> str:
    """Names one end of a job: a job that failed and was started afresh by an identical request
    ends again later, and that end is announced too."""
    if record.state is JobState.CANCELLED:  # its delivery outlives the record's short hold
        return f"{CANCELLED_MARK}{record.finished_at or 0:.6f}"
    return f"{record.attempt}-{record.finished_at or 0:.6f}"


CANCELLED_MARK = "cancelled-"


def is_cancel(marker: str) -> bool:
    return marker.startswith(CANCELLED_MARK)


def delivery_id(job_id: str, marker: str) -> str:
    """The webhook-id of one job end's deliveries: the same on every retry, so a receiver
    de-duplicates them; another end of the same job is another message."""
    return "msg_" + hashlib.sha256(f"export\0{job_id}\0{marker}".encode()).hexdigest()[:24]


def claim_announcement(client: redis.Redis, job_id: str, marker: str, ttl_s: int) -> bool:
    """True once per job end: the worker that records an end and a reaper or a redelivered task
    that meets the same end do not queue two deliveries."""
    return bool(client.set(keys.export_callback_sent(job_id, marker), "1", nx=True, ex=ttl_s))


def queue_announcement(client: redis.Redis, celery: Any, record: JobRecord, ttl_s: int) -> bool:
    """Queue the delivery of this ended job's final answer, once per end; False when the job has
    no CallbackUrl or this end was announced already. Sent by name, so the web (a cancel) and
    the workers (every other end) announce the same way; `celery` is a Celery app."""
    url = url_of(client, record.job_id)
    if not url:
        return False
    marker = end_marker(record)
    if not claim_announcement(client, record.job_id, marker, ttl_s):
        return False
    options: dict[str, Any] = {
        "args": [record.job_id, marker, url],
        "queue": Queue.CALLBACK.value,
        "task_id": f"export-callback-{delivery_id(record.job_id, marker)}",
    }
    registered = getattr(celery, "tasks", {})
    if TASK_NAME in registered:  # a worker: through its own task object (eager in tests)
        registered[TASK_NAME].apply_async(**options)
    else:  # the web: by name
        celery.send_task(TASK_NAME, **options)
    return True
