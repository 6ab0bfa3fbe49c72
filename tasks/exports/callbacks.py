"""An export's CallbackUrl: where the job's final answer is POSTed when it ends.

The URL is not part of the job's identity (two clients polling one job are one job), so it is
kept beside the job record: a request that carries a CallbackUrl sets it, replacing the one an
earlier identical request named; a request without one leaves it. The job's end is announced to
the URL stored at that moment, once per end, under one webhook-id across retries.
"""

from __future__ import annotations

import hashlib

import redis

from tasks.exports.store import JobRecord
from tasks.platform import keys


def remember(client: redis.Redis, job_id: str, url: str, ttl_s: int) -> None:
    """Where this job's end is announced (the latest request's URL wins)."""
    client.set(keys.export_callback(job_id), url, ex=ttl_s)


def url_of(client: redis.Redis, job_id: str) -> str:
    raw = client.get(keys.export_callback(job_id))
    return raw.decode() if isinstance(raw, bytes) else str(raw or "")


def end_marker(record: JobRecord) -> str:
    """Names one end of a job: a job that failed and was started afresh by an identical request
    ends again later, and that end is announced too."""
    return f"{record.attempt}-{record.finished_at or 0:.6f}"


def delivery_id(job_id: str, marker: str) -> str:
    """The webhook-id of one job end's deliveries: the same on every retry, so a receiver
    de-duplicates them; another end of the same job is another message."""
    return "msg_" + hashlib.sha256(f"export\0{job_id}\0{marker}".encode()).hexdigest()[:24]


def claim_announcement(client: redis.Redis, job_id: str, marker: str, ttl_s: int) -> bool:
    """True once per job end: the worker that records an end and a reaper or a redelivered task
    that meets the same end do not queue two deliveries."""
    return bool(client.set(keys.export_callback_sent(job_id, marker), "1", nx=True, ex=ttl_s))
