"""Running an export job: the job record in, the job record out; idempotent under redelivery.

A failure a client caused (no media, codec change) is recorded, not retried; a transient
system failure (S3 5xx, a network cut) propagates so the task layer retries it; anything else
is recorded as a failed export with what it said, never left at "processing".
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from dataclasses import dataclass

import redis

from tasks.exports.estimate import speed_kind
from tasks.exports.leases import AttemptLease, LeaseLost
from tasks.exports.outcomes import LEASE_LOST, READY, record_outcome
from tasks.exports.spec import ErrorCode, ExportSpec
from tasks.exports.states import ENDED_WITHOUT_RESULT
from tasks.exports.store import ExportJobStore, JobRecord
from tasks.exports.uploads import take_back, withdraw_completed
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore, StorageError, TransientStorageError
from workers.archive.model import Segment
from workers.errors import ExportError, SegmentsArchived
from workers.jobs.export_pipeline import covered_seconds, run_export
from workers.jobs.fencing import LeaseKeeper, take_over
from workers.jobs.progress import ThrottledProgress

log = logging.getLogger(__name__)

# Failures that a later try may fix (S3 5xx/throttling after botocore's own retries, a network or
# Redis blip): the task retries these, and only these, with backoff.
RETRYABLE = (TransientStorageError, redis.ConnectionError, redis.TimeoutError, ConnectionError)


@dataclass(frozen=True)
class JobOutcome:
    state: str  # ready, failed, restoring, fenced, or why nothing was done (stale, held, missing, ...)
    error_code: int = 0
    wall_s: float = 0.0


def process_export(
    job_id: str,
    token: str,
    jobs: ExportJobStore,
    store: ObjectStore,
    settings: Settings,
    worker: str,
) -> JobOutcome:
    claimed = jobs.claim(
        job_id,
        token,
        worker,
        settings.lease_ttl_s,
        settings.max_active_exports,
        settings.max_active_exports_per_user,
        settings.restore_poll_s / 2,  # resumes of one chain come restore_poll_s apart
    )
    if claimed == "busy":
        return _still_parked(jobs, store, job_id, token, settings)
    if claimed != "running":
        log.info("export not run", extra={"job_id": job_id, "reason": claimed})
        return JobOutcome(claimed)
    record = jobs.get(job_id)
    if record is None:
        return JobOutcome("missing")
    lease = AttemptLease(jobs, job_id, token, settings.lease_ttl_s)
    keep_uploads_s = max(settings.job_ttl_s, settings.restore_wait_s)
    started = time.monotonic()
    admission = record.objects_mark  # what this job's attempts may adopt of each other's
    with LeaseKeeper(lease, keep_uploads_s, admission) as keeper:
        try:
            return _run_attempt(record, token, jobs, store, settings, keeper, started)
        except LeaseLost as exc:
            withdraw_if_abandoned(jobs, store, record)
            count(jobs, record.spec, LEASE_LOST, time.monotonic() - started)
            log.warning(
                "export attempt fenced off",
                extra={"job_id": job_id, "attempt": token[:8], "reason": str(exc)},
            )
            return JobOutcome("fenced", 0, time.monotonic() - started)
        except RETRYABLE:
            with suppress(redis.RedisError):  # Redis itself away: the reaper requeues once the lease expires
                jobs.release(job_id, token)  # so the task's retry finds it queued under this token
            raise


def _run_attempt(
    record: JobRecord,
    token: str,
    jobs: ExportJobStore,
    store: ObjectStore,
    settings: Settings,
    keeper: LeaseKeeper,
    started: float,
) -> JobOutcome:
    job_id = record.job_id
    throttled = ThrottledProgress(lambda fraction, step: jobs.progress(job_id, token, fraction, step))

    def report(step: str, fraction: float) -> None:
        keeper.raise_if_lost()  # a fenced-off attempt stops at its next progress report
        throttled(step, fraction)

    # First of all, no earlier attempt (of this admission, or of one that ended before reaching its
    # uploads) may complete anything any more, whatever this attempt then meets (no media too).
    take_over(keeper, store)
    try:
        result = run_export(
            record.spec,
            store,
            settings,
            report,
            fence=keeper,
            indexed=lambda found: first_view(jobs, record.spec, token, found),
        )
    except SegmentsArchived as exc:
        if record.parked_at is not None and time.time() - record.parked_at >= settings.restore_wait_s:
            wait = f"{settings.restore_wait_s / 3600:g} h"
            gave_up = ExportError(ErrorCode.FAILED, f"{exc.message}, still not restored after {wait}")
            return _refused(record, token, jobs, store, gave_up, started)
        start_restores(store, record.spec, exc.keys, settings)
        if not jobs.park(job_id, token, settings.restore_wait_s):
            raise LeaseLost(f"job {job_id}: attempt {token[:8]} was fenced off before parking") from exc
        log.info("export waits for a restore", extra={"job_id": job_id, "segments": len(exc.keys)})
        return JobOutcome("restoring", int(exc.code), time.monotonic() - started)
    except ExportError as exc:
        return _refused(record, token, jobs, store, exc, started)
    wall = time.monotonic() - started
    if not jobs.finish(job_id, token, result):
        raise LeaseLost(f"job {job_id}: attempt {token[:8]} was fenced off before its result")
    waited = time.time() - record.created_at
    wait_error = waited - record.estimate_s if record.estimate_s > 0 else None
    record_outcome(jobs.redis, int(record.spec.export_type), READY, wall, result.size_bytes, wait_error)
    jobs.record_speed(speed_kind(record.spec, record.queue), result.exported_ms / 1000, wall)
    log.info("export ready", extra={"job_id": job_id, "wall_s": round(wall, 3), "bytes": result.size_bytes})
    return JobOutcome("ready", 0, wall)


def withdraw_if_abandoned(jobs: ExportJobStore, store: ObjectStore, record: JobRecord) -> None:
    """A fenced-off attempt whose admission will never answer 5 (its owner cancelled it, it
    failed, or a new admission replaced it) withdraws what it completed: its poster, a video
    completed after its last check. The cancel withdraws the same objects; this covers a cancel
    whose own withdrawal failed. An admission still going (a newer attempt adopts these
    objects) or answered 5 keeps them; a record Redis lost says nothing, so nothing is deleted."""
    try:
        now = jobs.get(record.job_id)
        if now is None or (now.objects_mark == record.objects_mark and now.state not in ENDED_WITHOUT_RESULT):
            return
        withdraw_completed(store, record.spec, record.objects_mark)
    except (redis.RedisError, StorageError) as exc:
        log.error("could not withdraw an abandoned attempt's objects", extra={"reason": str(exc)})


def _still_parked(
    jobs: ExportJobStore, store: ObjectStore, job_id: str, token: str, settings: Settings
) -> JobOutcome:
    """A parked job the limits had no room to resume: it stays parked (noted as looked at, so the
    reaper does not send it again) until its restore deadline, then it ends like any restore
    that never completed."""
    record = jobs.get(job_id)
    if record is None:
        return JobOutcome("missing")
    if record.parked_at is not None and time.time() - record.parked_at >= settings.restore_wait_s:
        wait = f"{settings.restore_wait_s / 3600:g} h"
        gave_up = ExportError(
            ErrorCode.FAILED, f"no room to resume the export after its restore within {wait}"
        )
        return _refused(record, token, jobs, store, gave_up, time.monotonic())
    jobs.touch_parked(job_id, True)
    log.info("parked export waits for room", extra={"job_id": job_id})
    return JobOutcome("busy")


def first_view(jobs: ExportJobStore, spec: ExportSpec, token: str, found: list[Segment]) -> list[Segment]:
    """The segments this admission cuts: those the lookup found, less any starting past where its
    first attempt's lookup ended (a live recording that grew since), so every attempt cuts the
    same clip and adopts what an earlier one uploaded: one object version per export."""
    seen_to = max((s.end_ms for s in found), default=0.0)
    pinned = jobs.pin_view(spec.job_id, token, seen_to)
    if pinned is None:
        raise LeaseLost(f"job {spec.job_id}: attempt {token[:8]} was fenced off while indexing")
    kept = [s for s in found if s.start_ms < pinned]
    jobs.cover(spec.job_id, token, covered_seconds(spec, kept))
    return kept


def _refused(
    record: JobRecord,
    token: str,
    jobs: ExportJobStore,
    store: ObjectStore,
    exc: ExportError,
    started: float,
) -> JobOutcome:
    """Record a failure retrying will not fix, with its ErrorCode (its claims go back with it),
    and withdraw what the job had completed (a poster uploaded before its video was refused)."""
    job_id = record.job_id
    if not jobs.fail(job_id, token, exc.code, exc.message):
        raise LeaseLost(f"job {job_id}: attempt {token[:8]} was fenced off before failing") from exc
    count(jobs, record.spec, f"error{int(exc.code)}", time.monotonic() - started)
    log.info("export refused", extra={"job_id": job_id, "code": int(exc.code), "reason": exc.message})
    withdraw_ended(jobs, store, record)
    return JobOutcome("failed", int(exc.code), time.monotonic() - started)


def count(jobs: ExportJobStore, spec: ExportSpec, outcome: str, wall_s: float) -> None:
    """One export outcome (other than ready) into resourced_exports_total."""
    record_outcome(jobs.redis, int(spec.export_type), outcome, wall_s, 0, None)


def start_restores(store: ObjectStore, spec: ExportSpec, keys: list[str], settings: Settings) -> None:
    """RestoreObject for every archived segment the range needs whose restore is not already
    under way: each resume of a parked job finds them archived until S3 finishes, and a request
    sent again is billed again."""
    for key in keys:
        try:
            if store.head(spec.source.bucket, key, spec.source.region).restore_in_progress:
                continue
            store.restore(
                spec.source.bucket, key, settings.restore_days, settings.restore_tier, spec.source.region
            )
        except TransientStorageError:
            raise
        except StorageError as exc:  # one segment's refusal must not stop the others' restores
            log.warning("restore refused", extra={"key": key, "reason": str(exc)})


def record_failure(
    jobs: ExportJobStore, store: ObjectStore, job_id: str, token: str, reason: str, outcome: str
) -> str:
    """The last word on a job whose task gave up (timed out, crashed, retries spent): failed with
    the reason, never stuck at 1, and counted under `outcome`; then what its attempt began or
    completed is taken back (withdraw_ended: a poster up before the time limit struck). An
    attempt fenced off meanwhile changes nothing and counts as such."""
    record = jobs.get(job_id)
    if record is None:
        return "missing"
    wall = time.time() - (record.started_at or record.created_at)
    if not jobs.fail(job_id, token, ErrorCode.FAILED, reason):
        count(jobs, record.spec, LEASE_LOST, wall)
        return "fenced"
    count(jobs, record.spec, outcome, wall)  # before the cleanup: the answer and its metric go together
    withdraw_ended(jobs, store, record)
    return "failed"


def withdraw_ended(jobs: ExportJobStore, store: ObjectStore, record: JobRecord) -> None:
    """After the job ended without a clip: abort the uploads its attempts recorded (no attempt can
    record another now), then delete what they completed. The answer stands if storage fails
    here; the object is logged for an operator (and a bucket's lifecycle rule ends uploads)."""
    try:
        take_back(jobs, store, record)
    except (StorageError, redis.RedisError) as exc:
        log.error(
            "could not withdraw an ended job's objects", extra={"job_id": record.job_id, "reason": str(exc)}
        )
