"""Holding a poll of an unfinished export open until the job ends, within a bounded hold.

The web tier runs gevent workers (deploy/gunicorn.conf.py), so a held poll is a parked
greenlet waiting on an event of the process's one job-events subscription (tasks/exports/events.py),
never a busy worker nor a Redis connection of its own. A client that wants an immediate
answer sends `Prefer: wait=0` (RFC 7240); a larger `wait` than the configured hold is capped.
"""

from __future__ import annotations

import re
import threading
import time

from prometheus_client import Gauge

from tasks.exports.events import JobEvents
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore, JobRecord
from tasks.platform.settings import Settings

PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+(?:\.\d+)?)\"?", re.IGNORECASE)


def hold_seconds(settings: Settings, prefer: str | None) -> float:
    """The configured hold, shortened by the client's `Prefer: wait=N`."""
    hold = settings.long_poll_s
    match = PREFER_WAIT.search(prefer or "")
    if match:
        hold = min(hold, float(match.group(1)))
    return max(hold, 0.0)


def pending(record: JobRecord) -> bool:
    """Queued or running toward a clip soon: worth holding. A restore takes hours: not."""
    return record.state in (JobState.QUEUED, JobState.RUNNING)


_events: dict[int, JobEvents] = {}
_events_lock = threading.Lock()

HELD = Gauge("resourced_held_polls", "Export polls held open now", multiprocess_mode="livesum")


def events_for(jobs: ExportJobStore) -> JobEvents:
    """This process's one subscription for the Redis client the job store uses."""
    with _events_lock:
        found = _events.get(id(jobs.redis))
        if found is None or found.client is not jobs.redis:
            found = _events[id(jobs.redis)] = JobEvents(jobs.redis)
        return found


def stop_listening() -> None:
    """End this process's job-events subscriptions (tests; a process shutting down)."""
    with _events_lock:
        found = list(_events.values())
        _events.clear()
    for events in found:
        events.close()


def until_end(jobs: ExportJobStore, record: JobRecord, hold_s: float) -> JobRecord:
    """The job's record once it ended (or went to a restore), or as it stands when the hold
    runs out."""
    if hold_s <= 0 or not pending(record):
        return record
    deadline = time.monotonic() + hold_s
    with events_for(jobs).watch(record.job_id) as changed:
        if changed is None:
            return record
        HELD.inc()
        try:
            while True:
                changed.clear()
                fresh = jobs.get(record.job_id)  # read after registering: an end before this is seen here
                if fresh is None or not pending(fresh):
                    return fresh or record
                left = deadline - time.monotonic()
                if left <= 0 or not changed.wait(left):
                    # Once more: a signal lost on the way (a publish during a Redis blip) must
                    # not make a job that ended look pending.
                    return jobs.get(record.job_id) or fresh
        finally:
            HELD.dec()
