"""TimeWait: an honest estimate of seconds until a job is ready, from its place in the queue,
the work ahead of it, the worker slots alive and the export speed measured so far."""

from __future__ import annotations

import math

from tasks.jobs import ExportSpec
from tasks.store import ExportJobStore, JobRecord, JobState

# Before anything was measured: a stream copy runs ~20x faster than real time on one core
# with S3 near by; an encode of 1080p with libx264 veryfast about 2x.
DEFAULT_WALL_PER_MEDIA_S = {"copy": 0.05, "encode": 0.5}
FIXED_OVERHEAD_S = 2.0  # indexing, thumbnail, the last upload round trips
MIN_WAIT_S, MAX_WAIT_S = 1, 600


def speed_kind(spec: ExportSpec) -> str:
    return "encode" if spec.needs_encoding else "copy"


def _speed(jobs: ExportJobStore, kind: str) -> float:
    return jobs.speed(kind) or DEFAULT_WALL_PER_MEDIA_S[kind]


def _clamp(seconds: float) -> int:
    return int(min(max(math.ceil(seconds), MIN_WAIT_S), MAX_WAIT_S))


def wait_for(jobs: ExportJobStore, record: JobRecord, slots: int) -> int:
    """Seconds until `record` should be ready."""
    speed = _speed(jobs, speed_kind(record.spec))
    own = record.media_s * (1 - record.progress) * speed + FIXED_OVERHEAD_S
    if record.state is JobState.RUNNING:
        return _clamp(own)
    rank = jobs.queue_position(record.job_id) or 0
    ahead = jobs.active_ids(limit=rank) if rank else []
    ahead_work = sum(m * (1 - p) * speed for m, p in jobs.media_seconds(ahead))
    return _clamp(own + ahead_work / max(slots, 1))


def wait_for_new(jobs: ExportJobStore, spec: ExportSpec, slots: int) -> float:
    """What `wait_for` would answer for a job admitted now; recorded to measure our honesty."""
    speed = _speed(jobs, speed_kind(spec))
    ahead = jobs.media_seconds(jobs.active_ids())
    ahead_work = sum(m * (1 - p) * speed for m, p in ahead)
    return spec.duration_ms / 1000 * speed + FIXED_OVERHEAD_S + ahead_work / max(slots, 1)


def wait_for_slot(jobs: ExportJobStore, spec: ExportSpec) -> int:
    """When a refused (busy) client should try again: when the soonest active job should end."""
    speed = _speed(jobs, speed_kind(spec))
    rows = jobs.media_seconds(jobs.active_ids(limit=50))
    soonest = min((m * (1 - p) * speed for m, p in rows), default=0.0)
    return _clamp(soonest + FIXED_OVERHEAD_S)
