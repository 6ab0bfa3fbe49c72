"""The one place that knows the Redis key layout; everything else asks here."""

from __future__ import annotations

PREFIX = "resourced"

ACTIVE_EXPORTS = f"{PREFIX}:exports:active"  # ZSET job_id -> enqueue time (queued + running)
EXPORT_STATS = f"{PREFIX}:stats:export"  # HASH of measured export speed, for TimeWait
WORKERS = f"{PREFIX}:workers:"  # prefix of one STRING per live worker, with a heartbeat TTL


def export_job(job_id: str) -> str:
    return f"{PREFIX}:export:{job_id}"


def active_exports_of(user: str) -> str:
    return f"{PREFIX}:exports:active:user:{user}"


def worker(name: str) -> str:
    return f"{WORKERS}{name}"


def session(session_id: str) -> str:
    return f"{PREFIX}:session:{session_id}"


def restore_job(task_id: str) -> str:
    return f"{PREFIX}:restore:{task_id}"


EXPORT_METRICS = f"{PREFIX}:metrics:exports"  # HASH of cluster-wide export counters and sums
REAPER_LOCK = f"{PREFIX}:lock:reaper"  # one worker reaps at a time


def imgbed_owner_lock(key: str) -> str:
    return f"{PREFIX}:imgbed:lock:{key}"


def export_events(job_id: str) -> str:
    """Pub/sub channel announcing a job's end (ready or failed) to polls held open for it."""
    return f"{PREFIX}:events:export:{job_id}"
