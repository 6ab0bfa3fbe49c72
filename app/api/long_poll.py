"""Holding a poll of an unfinished export open until the job ends, within a bounded hold.

The web tier runs gevent workers (deploy/gunicorn.conf.py), so a held poll is a parked
greenlet and one Redis subscription, never a busy worker. A client that wants an immediate
answer sends `Prefer: wait=0` (RFC 7240); a larger `wait` than the configured hold is capped.
"""

from __future__ import annotations

import re

from tasks.job_events import EndSignal
from tasks.settings import Settings
from tasks.store import RESTORING_STEP, ExportJobStore, JobRecord, JobState

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
    active = record.state in (JobState.QUEUED, JobState.RUNNING)
    return active and record.step != RESTORING_STEP


def until_end(jobs: ExportJobStore, record: JobRecord, hold_s: float) -> JobRecord:
    """The job's record once it ended, or as it stands when the hold runs out."""
    if hold_s <= 0 or not pending(record):
        return record
    with EndSignal(jobs.redis, record.job_id) as signal:
        if not signal.listening:
            return record
        fresh = jobs.get(record.job_id)  # re-read after subscribing: an end in between is seen here
        if fresh is None or not pending(fresh):
            return fresh or record
        signal.wait(hold_s)
    return jobs.get(record.job_id) or record
