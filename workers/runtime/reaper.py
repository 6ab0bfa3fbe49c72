"""Jobs whose worker vanished (killed, node lost) go back to the queue instead of hanging at
"processing" until the broker's visibility timeout. Every worker runs this from its heartbeat
thread under a Redis lock, so reaping needs no scheduler process and survives any one node."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import redis

from tasks import keys
from tasks.registry import live_workers
from tasks.store import RESTORING_STEP, ExportJobStore, JobState

log = logging.getLogger(__name__)

Enqueue = Callable[[str, int, str], None]  # job_id, attempt, queue
SILENT_FACTOR = 5  # progress is written every second while an export runs; 5x the stale limit is dead


def reap(
    jobs: ExportJobStore, client: redis.Redis, enqueue: Enqueue, stale_s: float, lost_queued_s: float
) -> int:
    """Requeue running jobs of gone workers, and queued jobs whose message was lost; returns count."""
    lock = client.lock(keys.REAPER_LOCK, timeout=60, blocking_timeout=0)
    if not lock.acquire():
        return 0
    try:
        alive = {w.name for w in live_workers(client)}
        now = time.time()
        requeued = 0
        for job_id in jobs.active_ids():
            record = jobs.get(job_id)
            if record is None:
                jobs.forget_active(job_id)  # expired record: free its admission slot
                continue
            idle = now - (record.updated_at or record.created_at)
            running = record.state is JobState.RUNNING
            # A live worker whose job fell silent (its task died while Redis was away) counts too.
            gone = (
                running and idle > stale_s and (record.worker not in alive or idle > SILENT_FACTOR * stale_s)
            )
            lost = record.state is JobState.QUEUED and idle > lost_queued_s
            if record.step == RESTORING_STEP and record.worker in alive:
                continue
            if not (gone or lost):
                continue
            attempt = jobs.requeue(job_id, record.attempt)
            if attempt:
                enqueue(job_id, attempt, record.queue)
                requeued += 1
                log.warning(
                    "export requeued",
                    extra={
                        "job_id": job_id,
                        "attempt": attempt,
                        "worker": record.worker,
                        "reason": "worker gone" if gone else "message lost",
                    },
                )
        return requeued
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
