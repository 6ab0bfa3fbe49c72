"""The export job record in Redis: the one truth about a job, changed only atomically.

Every transition is a Lua script, so two API processes answering the same request, or a
redelivered task racing its first delivery, can never both win. Records expire; while a job
is active it is also in the active sets that admission control counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from tasks.exports import events as job_events
from tasks.exports import scripts
from tasks.exports.spec import ErrorCode, ExportResult, ExportSpec
from tasks.platform import keys
from tasks.tenancy.ownership import claim_export_keys, release_export_claims


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"


RESTORING_STEP = "restoring"  # a running job waiting for its archived segments (ErrorCode 8)


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    state: JobState
    attempt: int
    spec: ExportSpec
    progress: float
    step: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    queue: str
    media_s: float
    estimate_s: float
    result: ExportResult | None
    error: str
    error_code: int
    updated_at: float
    worker: str
    first_attempt: int = 1  # this admission's first attempt: the cap counts from here
    parked_at: float | None = None  # when this admission first waited for a restore

    @property
    def attempts_made(self) -> int:
        """Attempts of this admission so far (earlier admissions' attempts are not counted)."""
        return self.attempt - self.first_attempt + 1

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[str, str]) -> JobRecord:
        def opt_float(name: str) -> float | None:
            return float(raw[name]) if raw.get(name) else None

        return cls(
            job_id=job_id,
            state=JobState(raw["state"]),
            attempt=int(raw.get("attempt", "1")),
            spec=ExportSpec.from_json(raw["spec"]),
            progress=float(raw.get("progress", "0")),
            step=raw.get("step", ""),
            created_at=float(raw.get("created_at", "0")),
            started_at=opt_float("started_at"),
            finished_at=opt_float("finished_at"),
            queue=raw.get("queue", ""),
            media_s=float(raw.get("media_s", "0")),
            estimate_s=float(raw.get("estimate_s", "0")),
            result=ExportResult.from_json(raw["result"]) if raw.get("result") else None,
            error=raw.get("error", ""),
            error_code=int(raw.get("error_code", "0") or 0),
            updated_at=float(raw.get("updated_at", "0")),
            worker=raw.get("worker", ""),
            first_attempt=int(raw.get("first_attempt", "1")),
            parked_at=opt_float("parked_at"),
        )


@dataclass(frozen=True)
class Admission:
    outcome: str  # "created", "exists" or "busy"
    detail: str  # attempt number, existing state, or which limit ("global"/"user")


class ExportJobStore:
    """Reads and atomically changes export job records."""

    def __init__(self, client: redis.Redis, job_ttl_s: int = 86_400) -> None:
        self.redis = client
        self.job_ttl_s = job_ttl_s
        self._admit = client.register_script(scripts.ADMIT)
        self._claim = client.register_script(scripts.CLAIM)
        self._progress = client.register_script(scripts.PROGRESS)
        self._finish = client.register_script(scripts.FINISH)
        self._requeue = client.register_script(scripts.REQUEUE)
        self._resend = client.register_script(scripts.RESEND)
        self._pin_view = client.register_script(scripts.PIN_VIEW)
        self._release = client.register_script(scripts.RELEASE)
        self._park = client.register_script(scripts.PARK)
        self._mark_reported = client.register_script(scripts.MARK_REPORTED)

    def admit(
        self,
        spec: ExportSpec,
        queue: str,
        max_active: int,
        max_per_user: int,
        estimate_s: float = 0.0,
    ) -> Admission:
        now = time.time()
        # An active job lives at least as long as the hard time limit allows, plus a margin.
        ttl = max(self.job_ttl_s, 2 * 3600)
        outcome, detail = self._admit(
            keys=[keys.export_job(spec.job_id), keys.ACTIVE_EXPORTS, keys.active_exports_of(spec.user)],
            args=[
                f"{now:.6f}",
                spec.to_json(),
                spec.user,
                max_active,
                max_per_user,
                ttl,
                spec.job_id,
                queue,
                spec.duration_ms / 1000,
                f"{estimate_s:.3f}",
            ],
        )
        return Admission(_text(outcome), _text(detail))

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.redis.hgetall(keys.export_job(job_id))
        if not raw or (b"state" not in raw and "state" not in raw):
            return None
        return JobRecord.from_hash(job_id, {_text(k): _text(v) for k, v in raw.items()})

    def claim(
        self,
        job_id: str,
        attempt: int,
        worker: str,
        lease_ttl_s: float = 30.0,
        max_active: int = 1 << 30,
        max_active_per_user: int = 1 << 30,
        resume_gap_s: float = 0.0,
    ) -> str:
        """ "running" (the lease is ours), or why not: stale, held, ready, failed, missing, busy
        (a parked job that the admission limits have no room for yet), or duplicate (a parked job
        looked at less than `resume_gap_s` ago: another chain of resume messages)."""
        job_keys = [keys.export_job(job_id), keys.export_lease(job_id), *self._active_keys(job_id)]
        min_ttl = max(self.job_ttl_s, 2 * 3600)
        args: list[str | int | float] = [
            attempt,
            f"{time.time():.6f}",
            worker,
            int(lease_ttl_s * 1000),
            min_ttl,
            RESTORING_STEP,
            job_id,
            max_active,
            max_active_per_user,
            resume_gap_s,
        ]
        return _text(self._claim(keys=job_keys, args=args))

    def lease_held(self, job_id: str) -> bool:
        return bool(self.redis.exists(keys.export_lease(job_id)))

    def release(self, job_id: str, attempt: int, step: str = "retrying") -> bool:
        """Back to queued under the same attempt, lease dropped, before a task retry re-sends it."""
        job_keys = [keys.export_job(job_id), keys.export_lease(job_id)]
        return bool(self._release(keys=job_keys, args=[attempt, step, f"{time.time():.6f}"]))

    def park(self, job_id: str, attempt: int, keep_s: int) -> bool:
        """Wait for a restore: ErrorCode 8 to pollers, no lease, no admission slots, record kept `keep_s`."""
        job_keys = [
            keys.export_job(job_id),
            keys.export_lease(job_id),
            *self._active_keys(job_id),
            keys.PARKED_EXPORTS,
        ]
        args: list[str | int] = [
            attempt,
            RESTORING_STEP,
            f"{time.time():.6f}",
            max(keep_s, self.job_ttl_s),
            job_id,
        ]
        parked = bool(self._park(keys=job_keys, args=args))
        if parked:
            job_events.publish_change(self.redis, job_id, RESTORING_STEP)  # held polls answer 8 now
            record = self.get(job_id)
            if record is not None:  # the destination stays reserved for as long as the job waits
                claim_export_keys(self.redis, record.spec, max(keep_s, self.job_ttl_s))
        return parked

    def mark_reported(self, job_id: str) -> bool:
        """A failure was answered (by a held poll): the next identical request starts afresh."""
        return bool(self._mark_reported(keys=[keys.export_job(job_id)]))

    def parked_since(self, before: float) -> list[str]:
        """Jobs parked for a restore whose last look is older than `before` (epoch seconds)."""
        return [_text(x) for x in self.redis.zrangebyscore(keys.PARKED_EXPORTS, "-inf", before)]

    def touch_parked(self, job_id: str, still_parked: bool) -> None:
        """After the reaper looked: note the time, or drop a job that is no longer parked."""
        if still_parked:
            self.redis.zadd(keys.PARKED_EXPORTS, {job_id: time.time()})
        else:
            self.redis.zrem(keys.PARKED_EXPORTS, job_id)

    def _active_keys(self, job_id: str) -> list[str]:
        user = self.redis.hget(keys.export_job(job_id), "user")
        return [keys.ACTIVE_EXPORTS, keys.active_exports_of(_text(user or ""))]

    def progress(self, job_id: str, attempt: int, fraction: float, step: str) -> bool:
        fraction = min(max(fraction, 0.0), 1.0)
        args: list[str | int] = [attempt, f"{fraction:.4f}", step, f"{time.time():.6f}"]
        return bool(self._progress(keys=[keys.export_job(job_id)], args=args))

    def finish(self, job_id: str, attempt: int, result: ExportResult) -> bool:
        return self._end(job_id, attempt, JobState.READY, "result", result.to_json(), 1.0, "")

    def fail(
        self, job_id: str, attempt: int, code: ErrorCode, message: str, unless_leased: bool = False
    ) -> bool:
        """`unless_leased`: only while no attempt holds the lease (the reaper giving up on a job)."""
        return self._end(
            job_id, attempt, JobState.FAILED, "error", message[:2000], 0.0, str(int(code)), unless_leased
        )

    def _end(
        self,
        job_id: str,
        attempt: int,
        state: JobState,
        field: str,
        value: str,
        progress: float,
        code: str,
        unless_leased: bool = False,
    ) -> bool:
        """The one place a job reaches ready or failed."""
        user = self.redis.hget(keys.export_job(job_id), "user")
        args = [
            attempt,
            state.value,
            f"{time.time():.6f}",
            field,
            value,
            progress,
            self.job_ttl_s,
            code,
            job_id,
            "1" if unless_leased else "0",
        ]
        job_keys = [
            keys.export_job(job_id),
            keys.ACTIVE_EXPORTS,
            keys.active_exports_of(_text(user or "")),
            keys.export_lease(job_id),
        ]
        ended = bool(self._finish(keys=job_keys, args=args))
        if ended:
            job_events.publish_change(self.redis, job_id, state.value)  # wakes polls held open for it
        return ended

    def requeue(self, job_id: str, attempt: int) -> int:
        """The new attempt number, or 0 when the job moved on meanwhile."""
        job_keys = [keys.export_job(job_id), keys.export_lease(job_id)]
        return int(self._requeue(keys=job_keys, args=[attempt, f"{time.time():.6f}"]))

    def resend(self, job_id: str, attempt: int) -> int:
        """Note that a queued attempt's message is being sent again: how many times it has been,
        or 0 when it moved on meanwhile."""
        return int(self._resend(keys=[keys.export_job(job_id)], args=[attempt, f"{time.time():.6f}"]))

    def queue_position(self, job_id: str) -> int | None:
        """How many active jobs were admitted before this one."""
        rank = self.redis.zrank(keys.ACTIVE_EXPORTS, job_id)
        return None if rank is None else int(rank)  # type: ignore[arg-type]

    def active_ids(self, limit: int = 1000) -> list[str]:
        return [_text(x) for x in self.redis.zrange(keys.ACTIVE_EXPORTS, 0, limit - 1)]

    def give_back_claims(self, spec: ExportSpec) -> None:
        """An export that ended without writing frees its destination keys for others, unless
        another active export of the same owner (who may queue several there) still writes one."""
        if not self.others_writing(spec):
            release_export_claims(self.redis, spec)

    def others_writing(self, spec: ExportSpec) -> bool:
        """Whether another active export of the same user writes either of this one's keys."""
        others = [m for m in map(_text, self.redis.zrange(keys.active_exports_of(spec.user), 0, -1))]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in others:
            pipe.hget(keys.export_job(job_id), "spec")
        wanted = _written(spec)
        for job_id, raw in zip(others, pipe.execute(), strict=True):
            if (
                job_id != spec.job_id
                and raw is not None
                and _written(ExportSpec.from_json(_text(raw))) & wanted
            ):
                return True
        return False

    def active_count(self) -> int:
        return int(self.redis.zcard(keys.ACTIVE_EXPORTS))

    def forget_active(self, job_id: str) -> None:
        """Drop a job id whose record has vanished (expired) from the active set."""
        self.redis.zrem(keys.ACTIVE_EXPORTS, job_id)

    def record_speed(self, kind: str, media_s: float, wall_s: float) -> None:
        """Fold one finished export of a kind ("copy"/"encode") into its measured speed (an EWMA)."""
        if media_s <= 0 or wall_s <= 0:
            return
        current = self.speed(kind)
        alpha = 0.3
        seconds_per_media_s = wall_s / media_s
        blended = (
            seconds_per_media_s if current is None else (1 - alpha) * current + alpha * seconds_per_media_s
        )
        self.redis.hset(keys.EXPORT_STATS, mapping={f"wall_per_media_s:{kind}": f"{blended:.6f}"})

    def speed(self, kind: str) -> float | None:
        """Measured wall seconds an export of a kind needs per second of media, once one finished."""
        raw = self.redis.hget(keys.EXPORT_STATS, f"wall_per_media_s:{kind}")
        return float(raw) if raw else None

    def pin_view(self, job_id: str, attempt: int, seen_to_ms: float) -> float | None:
        """Where this admission's first look at the recording ended (this look's `seen_to_ms`
        if it is the first); None when the attempt was fenced off."""
        pinned = self._pin_view(keys=[keys.export_job(job_id)], args=[attempt, f"{seen_to_ms:.3f}"])
        return None if pinned is None else float(_text(pinned))

    def cover(self, job_id: str, attempt: int, media_s: float) -> None:
        """The media seconds the range really holds, once indexed (for TimeWait; advisory)."""
        key = keys.export_job(job_id)
        if _text(self.redis.hget(key, "attempt")) == str(attempt):
            self.redis.hset(key, "media_s", f"{media_s:.3f}")

    def work_of(self, job_ids: list[str]) -> list[tuple[str, float, float]]:
        """(queue, media seconds, progress) of each job, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.export_job(job_id), "queue", "media_s", "progress")
        rows: list[Any] = pipe.execute()
        return [(_text(q), float(m or 0), float(p or 0)) for q, m, p in rows]

    def media_seconds(self, job_ids: list[str]) -> list[tuple[float, float]]:
        """(media seconds, progress) of each job, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.export_job(job_id), "media_s", "progress")
        rows: list[Any] = pipe.execute()
        return [(float(m or 0), float(p or 0)) for m, p in rows]


def _written(spec: ExportSpec) -> set[tuple[str, str]]:
    """The (bucket, key) pairs an export writes."""
    return {(spec.destination.bucket, spec.video_key), (spec.destination.bucket, spec.image_key)}


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
