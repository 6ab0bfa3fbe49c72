"""The export job's states: the one list every module reads (tasks/exports/scripts.py moves
between them, atomically, and nothing else writes a job's `state`).

queued -> running -> done | failed; running -> parked (waiting for a Glacier restore) -> running;
queued | running | parked -> cancelled (its owner asked). A lost worker sends running back to
queued under a fresh attempt token; a reaper that gives up ends it failed.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PARKED = "parked"  # waits for archived segments to be restored: ErrorCode 8, no lease, no slot
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        """Still going somewhere: it may yet change, and a cancel stops it."""
        return self in ACTIVE_STATES

    @classmethod
    def read(cls, raw: str, step: str = "") -> JobState:
        """The state a record holds; records written before the state machine named `parked` and
        `done` (running with step "restoring", "ready") read as what they meant, so a rolling
        upgrade answers their polls unchanged."""
        if raw == "ready":
            return cls.DONE
        if raw == "running" and step == "restoring":
            return cls.PARKED
        return cls(raw)


ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.PARKED})
# Ended with no clip to answer: whatever an attempt of it completed must not stay in the bucket.
ENDED_WITHOUT_RESULT = frozenset({JobState.FAILED, JobState.CANCELLED})
ENDED_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})
PARKED_STEP = "restoring"  # the step a parked job shows in its message
