"""TimeWait: an honest estimate of seconds until a job is ready, from the measured speed of the
job's own queue (stream copy, CPU encode, GPU encode), the media the range really holds, the
work queued ahead of it on that queue and the worker slots serving it.

The media seconds start as the requested Duration and become the indexed coverage once a worker
has read the playlists (a 3-hour request over a 60 s recording is then estimated on 60 s).
TimeWait is rounded down: the next poll is held open until the job ends (app/api/long_poll.py),
so arriving a little early costs nothing and arriving late costs the client the difference.
"""

from __future__ import annotations

import math
import time

from tasks.exports.spec import ExportSpec
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore, JobRecord
from tasks.platform.celery_app import Queue

# Before anything was measured on a queue: a stream copy runs ~20x faster than real time on one
# core with S3 near by; a 1080p encode with libx264 veryfast about 2x; NVENC several times that.
DEFAULT_WALL_PER_MEDIA_S = {
    Queue.EXPORT_COPY.value: 0.05,
    Queue.EXPORT_CPU.value: 0.5,
    Queue.EXPORT_GPU.value: 0.15,
}
UNMEASURED_OVERHEAD_S = 2.0  # indexing, thumbnail, last upload round trips; measured speeds include it
MIN_WAIT_S, MAX_WAIT_S = 1, 600
# Progress between which a running job's own pace predicts the rest of it: from a fifth of the
# way, until its cut ends (0.85: the last parts' upload and the poster are quick, so past the
# cut that pace would overstate what is left; the job is then close to ready).
OWN_PACE_FROM, OWN_PACE_UNTIL = 0.2, 0.85
FIRST_LOOK_S = 2.0  # a started job has indexed its range within this (listing playlists, a few GETs)


def speed_kind(spec: ExportSpec, queue: str = "") -> str:
    """The queue whose speed applies; a job admitted before queues were recorded falls back."""
    if queue in DEFAULT_WALL_PER_MEDIA_S:
        return queue
    return Queue.EXPORT_CPU.value if spec.needs_encoding else Queue.EXPORT_COPY.value


def job_seconds(jobs: ExportJobStore, kind: str, media_s: float) -> float:
    """Wall seconds one job of `media_s` takes on the queue `kind`, start to finish."""
    measured = jobs.speed(kind)
    if measured is None:
        return media_s * DEFAULT_WALL_PER_MEDIA_S[kind] + UNMEASURED_OVERHEAD_S
    return media_s * measured


def _wait(seconds: float) -> int:
    return int(min(max(math.floor(seconds), MIN_WAIT_S), MAX_WAIT_S))


def remaining(jobs: ExportJobStore, record: JobRecord, now: float | None = None) -> float:
    """Seconds of work left on `record` itself, from its progress and the time it has run. A
    job slower than its queue's measured speed (an H.265 1080p encode on a queue that measured
    720p H.264 ones) is judged by its own pace while it cuts (OWN_PACE_FROM to OWN_PACE_UNTIL),
    so it is not answered "1 s" for the whole of its overrun."""
    total = job_seconds(jobs, speed_kind(record.spec, record.queue), record.media_s)
    left = total * (1 - record.progress)
    if record.state is JobState.RUNNING and record.started_at:
        elapsed = (now or time.time()) - record.started_at
        left = min(left, total - elapsed)
        if OWN_PACE_FROM <= record.progress < OWN_PACE_UNTIL:
            left = max(left, elapsed * (1 - record.progress) / record.progress)
    return max(left, 0.0)


def _work_ahead(jobs: ExportJobStore, kind: str, job_ids: list[str]) -> float:
    """Seconds of work in `job_ids` that run on the same queue as `kind`."""
    rows = jobs.work_of(job_ids)
    return sum(job_seconds(jobs, kind, m) * (1 - p) for q, m, p in rows if speed_kind_of(q, kind) == kind)


def speed_kind_of(queue: str, fallback: str) -> str:
    return queue if queue in DEFAULT_WALL_PER_MEDIA_S else fallback


def seconds_until_ready(jobs: ExportJobStore, record: JobRecord, slots: int) -> float:
    own = remaining(jobs, record)
    if record.state is JobState.RUNNING:
        return own
    # Queued: what the range holds is unknown until a worker indexes it (a 3-hour request over a
    # 60 s recording), so the client is asked back when the job should have started and been
    # indexed; that poll is held and answers with the clip or an estimate on the covered media.
    own = min(own, FIRST_LOOK_S)
    rank = jobs.queue_position(record.job_id) or 0
    ahead = jobs.active_ids(limit=rank) if rank else []
    kind = speed_kind(record.spec, record.queue)
    return own + _work_ahead(jobs, kind, ahead) / max(slots, 1)


def wait_for(jobs: ExportJobStore, record: JobRecord, slots: int) -> int:
    """TimeWait for `record`: whole seconds, at least 1."""
    return _wait(seconds_until_ready(jobs, record, slots))


def wait_for_new(jobs: ExportJobStore, spec: ExportSpec, slots: int, queue: str = "") -> float:
    """What `wait_for` would answer for a job admitted now; recorded to measure our honesty."""
    kind = speed_kind(spec, queue)
    own = job_seconds(jobs, kind, spec.duration_ms / 1000)
    return own + _work_ahead(jobs, kind, jobs.active_ids()) / max(slots, 1)


def wait_for_slot(jobs: ExportJobStore, spec: ExportSpec) -> int:
    """When a refused (busy) client should try again: when the soonest active job should end."""
    kind = speed_kind(spec)
    rows = jobs.work_of(jobs.active_ids(limit=50))
    soonest = min((job_seconds(jobs, speed_kind_of(q, kind), m) * (1 - p) for q, m, p in rows), default=0.0)
    return int(min(max(math.ceil(soonest), MIN_WAIT_S), MAX_WAIT_S))
