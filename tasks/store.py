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

from tasks import keys
from tasks.jobs import ErrorCode, ExportResult, ExportSpec


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"


RESTORING_STEP = "restoring"  # a running job waiting for its archived segments (ErrorCode 8)

# Admit a new job, or a fresh attempt of a failed one, unless a limit is reached. A failure is
# answered once (so a polling client learns of it) before the next request starts afresh.
_ADMIT = """
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'failed' then return {'exists', state} end
if state == 'failed' and redis.call('HGET', KEYS[1], 'reported') ~= '1' then
  redis.call('HSET', KEYS[1], 'reported', '1')
  return {'exists', state}
end
for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if redis.call('EXISTS', 'resourced:export:' .. member) == 0 then redis.call('ZREM', KEYS[3], member) end
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return {'busy', 'global'} end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return {'busy', 'user'} end
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0') + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempt', attempt, 'spec', ARGV[2], 'user', ARGV[3],
  'created_at', ARGV[1], 'updated_at', ARGV[1], 'progress', '0', 'step', 'queued',
  'queue', ARGV[8], 'media_s', ARGV[9], 'estimate_s', ARGV[10])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[7])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return {'created', tostring(attempt)}
"""

# Move a queued job of the given attempt to running and give it the lease. A running attempt is
# never resumed by a second delivery of its message (the first holder may only be frozen): the
# reaper requeues it as a new attempt once its lease expires. A job parked for a restore is
# resumed by its own attempt, and holds admission slots again while it runs.
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 'stale' end
if state ~= 'queued' and state ~= 'running' then return state or 'missing' end
local parked = redis.call('HGET', KEYS[1], 'step') == ARGV[6]
if state == 'running' and not parked then return 'held' end
if parked then
  local since = redis.call('HGET', KEYS[1], 'created_at')
  redis.call('ZADD', KEYS[3], since, ARGV[7])
  redis.call('ZADD', KEYS[4], since, ARGV[7])
end
redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[2], 'updated_at', ARGV[2],
  'worker', ARGV[3], 'step', 'starting')
redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
return 'running'
"""

# A job whose attempt lost its lease (worker killed or frozen) goes back to the queue as a new
# attempt; the old attempt, if it ever wakes or is redelivered, is fenced off and does nothing.
# Refused while the lease is held: a live worker's job is never taken from it.
_REQUEUE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
local attempt = tonumber(ARGV[1]) + 1
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempt', attempt, 'step', 'requeued', 'updated_at', ARGV[2],
  'progress', '0')
return attempt
"""

# Hand a running attempt back to the queue under the same attempt number (a task retry follows).
_RELEASE = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'step', ARGV[2], 'updated_at', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"""

# Park a running attempt while S3 restores archived segments: no lease, no admission slots, and
# a record that lives as long as a restore can take. Its own attempt resumes it (see _CLAIM).
_PARK = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'step', ARGV[2], 'progress', '0', 'updated_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[5])
redis.call('ZREM', KEYS[4], ARGV[5])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[5])
return 1
"""

# Record progress only while this attempt is still the running one.
_PROGRESS = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2], 'step', ARGV[3], 'updated_at', ARGV[4])
return 1
"""

# End an active attempt as ready or failed, and release its admission slots and its lease. The
# reaper ends a job only while no lease is held (ARGV[10] = '1').
_FINISH = """
if ARGV[10] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', ARGV[3], 'updated_at', ARGV[3],
  'progress', ARGV[6], 'step', ARGV[2], ARGV[4], ARGV[5])
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'error_code', ARGV[8]) end
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZREM', KEYS[2], ARGV[9])
redis.call('ZREM', KEYS[3], ARGV[9])
redis.call('DEL', KEYS[4])
return 1
"""


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
        self._admit = client.register_script(_ADMIT)
        self._claim = client.register_script(_CLAIM)
        self._progress = client.register_script(_PROGRESS)
        self._finish = client.register_script(_FINISH)
        self._requeue = client.register_script(_REQUEUE)
        self._release = client.register_script(_RELEASE)
        self._park = client.register_script(_PARK)

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

    def claim(self, job_id: str, attempt: int, worker: str, lease_ttl_s: float = 30.0) -> str:
        """ "running" (the lease is ours), or why not: stale, held, ready, failed, missing."""
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
        return bool(self._park(keys=job_keys, args=args))

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
        return bool(self._finish(keys=job_keys, args=args))

    def requeue(self, job_id: str, attempt: int) -> int:
        """The new attempt number, or 0 when the job moved on meanwhile."""
        job_keys = [keys.export_job(job_id), keys.export_lease(job_id)]
        return int(self._requeue(keys=job_keys, args=[attempt, f"{time.time():.6f}"]))

    def queue_position(self, job_id: str) -> int | None:
        """How many active jobs were admitted before this one."""
        rank = self.redis.zrank(keys.ACTIVE_EXPORTS, job_id)
        return None if rank is None else int(rank)  # type: ignore[arg-type]

    def active_ids(self, limit: int = 1000) -> list[str]:
        return [_text(x) for x in self.redis.zrange(keys.ACTIVE_EXPORTS, 0, limit - 1)]

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

    def media_seconds(self, job_ids: list[str]) -> list[tuple[float, float]]:
        """(media seconds, progress) of each job, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.export_job(job_id), "media_s", "progress")
        rows: list[Any] = pipe.execute()
        return [(float(m or 0), float(p or 0)) for m, p in rows]


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
