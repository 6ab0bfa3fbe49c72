"""Running an export job: the job record in, the job record out; idempotent under redelivery.

A failure a client caused (no media, codec change) is recorded, not retried; a transient
system failure (S3 5xx, a network cut) propagates so the task layer retries it; anything else
is recorded as a failed export with what it said, never left at "processing".
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from tasks.estimate import speed_kind
from tasks.job_events import publish_change
from tasks.jobs import ErrorCode, ExportSpec
from tasks.outcomes import record_outcome
from tasks.settings import Settings
from tasks.storage import ObjectStore, TransientStorageError
from tasks.store import RESTORING_STEP, ExportJobStore
from workers.errors import ExportError, SegmentsArchived
from workers.jobs.export_pipeline import run_export
from workers.jobs.progress import ThrottledProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOutcome:
    state: str  # ready, failed, or why nothing was done (stale, missing, ready, failed)
    error_code: int = 0
    wall_s: float = 0.0


def process_export(
    job_id: str,
    attempt: int,
    jobs: ExportJobStore,
    store: ObjectStore,
    settings: Settings,
    worker: str,
) -> JobOutcome:
    claimed = jobs.claim(job_id, attempt, worker)
    if claimed != "running":
        log.info("export not run", extra={"job_id": job_id, "reason": claimed})
        return JobOutcome(claimed)
    record = jobs.get(job_id)
    if record is None:
        return JobOutcome("missing")
    report = ThrottledProgress(lambda fraction, step: jobs.progress(job_id, attempt, fraction, step))
    started = time.monotonic()
    try:
        result = run_export(
            record.spec, store, settings, report, lambda covered_s: jobs.cover(job_id, attempt, covered_s)
        )
    except SegmentsArchived as exc:
        start_restores(store, record.spec, exc.keys, settings)
        jobs.progress(job_id, attempt, 0.0, RESTORING_STEP)
        publish_change(jobs.redis, job_id, RESTORING_STEP)  # held polls answer 8 now, not at their hold's end
        log.info("export waits for a restore", extra={"job_id": job_id, "segments": len(exc.keys)})
        return JobOutcome("restoring", int(exc.code), time.monotonic() - started)
    except ExportError as exc:
        jobs.fail(job_id, attempt, exc.code, exc.message)
        record_outcome(
            jobs.redis,
            int(record.spec.export_type),
            f"error{int(exc.code)}",
            time.monotonic() - started,
            0,
            None,
        )
        log.info("export refused", extra={"job_id": job_id, "code": int(exc.code), "reason": exc.message})
        return JobOutcome("failed", int(exc.code), time.monotonic() - started)
    wall = time.monotonic() - started
    jobs.finish(job_id, attempt, result)
    waited = time.time() - record.created_at
    wait_error = waited - record.estimate_s if record.estimate_s > 0 else None
    record_outcome(jobs.redis, int(record.spec.export_type), "ready", wall, result.size_bytes, wait_error)
    jobs.record_speed(speed_kind(record.spec, record.queue), result.exported_ms / 1000, wall)
    log.info("export ready", extra={"job_id": job_id, "wall_s": round(wall, 3), "bytes": result.size_bytes})
    return JobOutcome("ready", 0, wall)


def start_restores(store: ObjectStore, spec: ExportSpec, keys: list[str], settings: Settings) -> None:
    """RestoreObject for every archived segment the range needs (a restore in progress is fine)."""
    for key in keys:
        try:
            store.restore(
                spec.source.bucket, key, settings.restore_days, settings.restore_tier, spec.source.region
            )
        except TransientStorageError:
            raise
        except Exception as exc:  # one segment's refusal must not stop the others' restores
            log.warning("restore refused", extra={"key": key, "reason": str(exc)})


def record_failure(jobs: ExportJobStore, job_id: str, attempt: int, reason: str) -> None:
    """The last word on a job whose task gave up: failed with the reason, never stuck at 1."""
    jobs.fail(job_id, attempt, ErrorCode.FAILED, reason)
