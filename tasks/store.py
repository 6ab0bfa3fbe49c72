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

from tasks import job_events, keys
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

# Move an active job of the given attempt to running (a redelivery of a running job may resume it).
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 'stale' end
if state ~= 'queued' and state ~= 'running' then return state or 'missing' end
redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', ARGV[2], 'updated_at', ARGV[2],
  'worker', ARGV[3], 'step', 'starting')
redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
return 'running'
"""

# A job whose worker vanished goes back to the queue as a new attempt; the old attempt's task,
# if it is ever redelivered, finds itself stale and does nothing.
_REQUEUE = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
local attempt = tonumber(ARGV[1]) + 1
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempt', attempt, 'step', 'requeued', 'updated_at', ARGV[2],
  'progress', '0')
return attempt
"""

# Record progress only while this attempt is still the running one.
_PROGRESS = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2], 'step', ARGV[3], 'updated_at', ARGV[4])
return 1
"""

# End an active attempt as ready or failed, and release its admission slots.
_FINISH = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'finished_at', ARGV[3], 'updated_at', ARGV[3],
  'progress', ARGV[6], 'step', ARGV[2], ARGV[4], ARGV[5])
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'error_code', ARGV[8]) end
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZREM', KEYS[2], ARGV[9])
redis.call('ZREM', KEYS[3], ARGV[9])
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

    def claim(self, job_id: str, attempt: int, worker: str) -> str:
        outcome = self._claim(keys=[keys.export_job(job_id)], args=[attempt, f"{time.time():.6f}", worker])
        return _text(outcome)

    def progress(self, job_id: str, attempt: int, fraction: float, step: str) -> bool:
        fraction = min(max(fraction, 0.0), 1.0)
        args: list[str | int] = [attempt, f"{fraction:.4f}", step, f"{time.time():.6f}"]
        return bool(self._progress(keys=[keys.export_job(job_id)], args=args))

    def finish(self, job_id: str, attempt: int, result: ExportResult) -> bool:
        return self._end(job_id, attempt, JobState.READY, "result", result.to_json(), 1.0, "")

    def fail(self, job_id: str, attempt: int, code: ErrorCode, message: str) -> bool:
        return self._end(job_id, attempt, JobState.FAILED, "error", message[:2000], 0.0, str(int(code)))

    def _end(
        self, job_id: str, attempt: int, state: JobState, field: str, value: str, progress: float, code: str
    ) -> bool:
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
        ]
        job_keys = [keys.export_job(job_id), keys.ACTIVE_EXPORTS, keys.active_exports_of(_text(user or ""))]
        ended = bool(self._finish(keys=job_keys, args=args))
        if ended:
            job_events.publish_change(self.redis, job_id, state.value)  # wakes polls held open for it
        return ended

    def requeue(self, job_id: str, attempt: int) -> int:
        """The new attempt number, or 0 when the job moved on meanwhile."""
        return int(self._requeue(keys=[keys.export_job(job_id)], args=[attempt, f"{time.time():.6f}"]))

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


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
