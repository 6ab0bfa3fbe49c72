"""The export job record in Redis: the one truth about a job, changed only atomically.

Every transition is one Lua script (tasks/exports/scripts.py) over the states of
tasks/exports/states.py, checking the random token of the attempt that asks, so two API processes
answering the same request, a redelivered task racing its first delivery, or an attempt whose
record Redis lost can never both win. Records expire; while a job is queued or running it is
also in the active sets that admission control counts, and every job is in the registries
(newest first) that listing reads.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis

from tasks.exports import events as job_events
from tasks.exports import listing, scripts
from tasks.exports.spec import ErrorCode, ExportResult, ExportSpec
from tasks.exports.states import PARKED_STEP, JobState
from tasks.platform import keys

REGISTRY_CAP = 10_000  # jobs kept listable per user (and in the all-users registry), newest first


def new_token() -> str:
    """A random attempt (or admission) token: never repeated, even after Redis lost a record."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    state: JobState
    attempt: int  # this admission's attempts so far: only the attempts cap reads it
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
    token: str = ""  # the current attempt's random token: the fencing token
    admission: str = ""  # this admission's random token: what its destination claims are held by
    parked_at: float | None = None  # when this admission first waited for a restore

    @property
    def objects_mark(self) -> str:
        """What the JOB_META of every object this admission's attempts write begins with (their
        fence token: workers/jobs/fencing.object_mark), so that whoever ends the job without
        its result (a cancel, a failure, the reaper) finds what they completed."""
        return f"{self.job_id}@{self.created_at:.6f}"

    @property
    def attempts_made(self) -> int:
        """Attempts of this admission so far (the count restarts with each admission)."""
        return self.attempt

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[str, str]) -> JobRecord:
        def opt_float(name: str) -> float | None:
            return float(raw[name]) if raw.get(name) else None

        return cls(
            job_id=job_id,
            state=JobState.read(raw["state"], raw.get("step", "")),
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
            token=raw.get("token", ""),
            admission=raw.get("admission", ""),
            parked_at=opt_float("parked_at"),
        )


@dataclass(frozen=True)
class Admission:
    outcome: str  # "created", "exists", "busy" or "forbidden"
    detail: str  # the attempt token, the existing state, which limit ("global"/"user"), or which key


class ExportJobStore:
    """Reads and atomically changes export job records."""

    def __init__(self, client: redis.Redis, job_ttl_s: int = 86_400) -> None:
        self.redis = client
        self.job_ttl_s = job_ttl_s
        names = [
            "ADMIT", "START", "PROGRESS", "FINISH", "REQUEUE", "RESEND", "PIN_VIEW", "COVER",
            "RELEASE", "PARK", "MARK_REPORTED", "CANCEL", "RENEW", "HOLDS", "RECORD_UPLOAD",
        ]  # fmt: skip
        self._scripts = {name: client.register_script(getattr(scripts, name)) for name in names}

    def run(self, name: str, job_keys: list[str], args: list[Any]) -> Any:
        """Run one transition of tasks/exports/scripts.py (leases.py runs its fence through here)."""
        return self._scripts[name](keys=job_keys, args=args)

    def admit(
        self,
        spec: ExportSpec,
        queue: str,
        max_active: int,
        max_per_user: int,
        estimate_s: float = 0.0,
        claim_ttl_s: int = 0,
    ) -> Admission:
        """Create the job and claim its destination keys in one step, unless it exists (identical
        requests converge on it, and touch no claim), another user's export claimed a key
        ("forbidden", ErrorCode 3) or a limit is reached ("busy")."""
        now = time.time()
        # An active job lives at least as long as the hard time limit allows, plus a margin.
        ttl = max(self.job_ttl_s, 2 * 3600)
        claims = claim_keys(spec)
        members = [_text(m) for m in self.redis.zrange(keys.active_exports_of(spec.user), 0, -1)]
        job_keys = [
            keys.export_job(spec.job_id),
            keys.export_lease(spec.job_id),
            keys.ACTIVE_EXPORTS,
            keys.active_exports_of(spec.user),
            keys.EXPORT_REGISTRY,
            keys.export_registry_of(spec.user),
            *claims,
            *(keys.export_job(m) for m in members),
        ]
        args: list[Any] = [
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
            new_token(),
            new_token(),
            spec.writer,
            max(claim_ttl_s, ttl),
            len(claims),
            REGISTRY_CAP,
            *members,
        ]
        outcome, detail = self.run("ADMIT", job_keys, args)
        return Admission(_text(outcome), _text(detail))

    def get(self, job_id: str) -> JobRecord | None:
        raw = self.redis.hgetall(keys.export_job(job_id))
        if not raw or (b"state" not in raw and "state" not in raw):
            return None
        return JobRecord.from_hash(job_id, {_text(k): _text(v) for k, v in raw.items()})

    def claim(
        self,
        job_id: str,
        token: str,
        worker: str,
        lease_ttl_s: float = 30.0,
        max_active: int = 1 << 30,
        max_active_per_user: int = 1 << 30,
        resume_gap_s: float = 0.0,
    ) -> str:
        """ "running" (the lease is ours), or why not: stale, held, done, failed, cancelled,
        missing, busy (a parked job that the admission limits have no room for yet), or duplicate
        (a parked job looked at less than `resume_gap_s` ago: another chain of resume messages)."""
        job_keys = [keys.export_job(job_id), keys.export_lease(job_id), *self._active_keys(job_id)]
        min_ttl = max(self.job_ttl_s, 2 * 3600)
        args: list[str | int | float] = [
            token,
            f"{time.time():.6f}",
            worker,
            int(lease_ttl_s * 1000),
            min_ttl,
            job_id,
            max_active,
            max_active_per_user,
            resume_gap_s,
        ]
        return _text(self.run("START", job_keys, args))

    def lease_held(self, job_id: str) -> bool:
        return bool(self.redis.exists(keys.export_lease(job_id)))

    def release(self, job_id: str, token: str, step: str = "retrying") -> bool:
        """Back to queued under the same token, lease dropped, before a task retry re-sends it."""
        job_keys = [keys.export_job(job_id), keys.export_lease(job_id)]
        return bool(self.run("RELEASE", job_keys, [token, step, f"{time.time():.6f}"]))

    def park(self, job_id: str, token: str, keep_s: int) -> bool:
        """Wait for a restore: ErrorCode 8 to pollers, no lease, no admission slots, record and
        destination claims kept `keep_s`."""
        keep = max(keep_s, self.job_ttl_s)
        job_keys = [
            keys.export_job(job_id),
            keys.export_lease(job_id),
            *self._active_keys(job_id),
            keys.PARKED_EXPORTS,
            *self._claim_keys(job_id),
        ]
        args: list[str | int] = [token, PARKED_STEP, f"{time.time():.6f}", keep, job_id]
        parked = bool(self.run("PARK", job_keys, args))
        if parked:
            job_events.publish_change(self.redis, job_id, JobState.PARKED.value)  # held polls answer 8
        return parked

    def cancel(self, job_id: str, hold_s: int) -> tuple[str, JobRecord | None]:
        """The owner's cancel: ("cancelled", record) once an active job ended cancelled (its
        attempt's next fence check raises LeaseLost; abort its uploads with
        tasks.exports.uploads.abort_recorded_uploads), ("ended", record) for a job that had
        already ended (nothing changed), ("missing", None) when there is no such job."""
        job_keys = [
            keys.export_job(job_id),
            keys.export_lease(job_id),
            *self._active_keys(job_id),
            keys.PARKED_EXPORTS,
            *self._claim_keys(job_id),
        ]
        outcome = _text(self.run("CANCEL", job_keys, [f"{time.time():.6f}", max(int(hold_s), 1), job_id]))
        if outcome == "cancelled":
            job_events.publish_change(self.redis, job_id, JobState.CANCELLED.value)  # wakes held polls
        record = self.get(job_id)
        if record is None:
            return "missing", None
        return outcome, record

    def list_jobs(
        self, user: str | None, state: JobState | None, limit: int, cursor: str
    ) -> tuple[list[JobRecord], str]:
        """A user's jobs (every user's with `user` None), newest first, optionally in one state:
        a page of at most `limit` and the cursor of the next page ("" at the end). Entries whose
        record expired are dropped as they are met. ValueError for a bad limit or cursor."""
        registry = keys.EXPORT_REGISTRY if user is None else keys.export_registry_of(user)
        return listing.page(self.redis, registry, self.get, state, limit, cursor)

    def mark_reported(self, job_id: str) -> bool:
        """A failure was answered (by a held poll): the next identical request starts afresh."""
        return bool(self.run("MARK_REPORTED", [keys.export_job(job_id)], []))

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

    def _claim_keys(self, job_id: str) -> list[str]:
        """The claim keys a job holds (its spec never changes for a job id)."""
        raw = self.redis.hget(keys.export_job(job_id), "spec")
        return claim_keys(ExportSpec.from_json(_text(raw))) if raw else []

    def progress(self, job_id: str, token: str, fraction: float, step: str) -> bool:
        fraction = min(max(fraction, 0.0), 1.0)
        args: list[str | int] = [token, f"{fraction:.4f}", step, f"{time.time():.6f}"]
        return bool(self.run("PROGRESS", [keys.export_job(job_id)], args))

    def finish(self, job_id: str, token: str, result: ExportResult) -> bool:
        return self._end(job_id, token, JobState.DONE, "result", result.to_json(), 1.0, "")

    def fail(
        self, job_id: str, token: str, code: ErrorCode, message: str, unless_leased: bool = False
    ) -> bool:
        """`unless_leased`: only while no attempt holds the lease (the reaper giving up on a job)."""
        return self._end(
            job_id, token, JobState.FAILED, "error", message[:2000], 0.0, str(int(code)), unless_leased
        )

    def _end(
        self,
        job_id: str,
        token: str,
        state: JobState,
        field: str,
        value: str,
        progress: float,
        code: str,
        unless_leased: bool = False,
    ) -> bool:
        """The one place a job reaches done or failed; its hold on its claims ends with it."""
        args = [
            token,
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
            *self._active_keys(job_id),
            keys.export_lease(job_id),
            *self._claim_keys(job_id),
        ]
        ended = bool(self.run("FINISH", job_keys, args))
        if ended:
            job_events.publish_change(self.redis, job_id, state.value)  # wakes polls held open for it
        return ended

    def requeue(self, job_id: str, token: str, new: str | None = None, hold: bool = False) -> int:
        """Hand the job to a fresh attempt token `new` (minted here when None): the attempt count,
        or 0 when the job moved on meanwhile. `hold` keeps it running under `new` with no lease
        (the reaper fences the last attempt off before it aborts its uploads and gives up)."""
        job_keys = [keys.export_job(job_id), keys.export_lease(job_id)]
        args = [token, f"{time.time():.6f}", new or new_token(), "1" if hold else "0"]
        return int(self.run("REQUEUE", job_keys, args))

    def resend(self, job_id: str, token: str) -> int:
        """Note that a queued attempt's message is being sent again: how many times it has been,
        or 0 when it moved on meanwhile."""
        return int(self.run("RESEND", [keys.export_job(job_id)], [token, f"{time.time():.6f}"]))

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

    def pin_view(self, job_id: str, token: str, seen_to_ms: float) -> float | None:
        """Where this admission's first look at the recording ended (this look's `seen_to_ms`
        if it is the first); None when the attempt was fenced off."""
        pinned = self.run("PIN_VIEW", [keys.export_job(job_id)], [token, f"{seen_to_ms:.3f}"])
        return None if pinned is None else float(_text(pinned))

    def cover(self, job_id: str, token: str, media_s: float) -> None:
        """The media seconds the range really holds, once indexed (for TimeWait; advisory)."""
        self.run("COVER", [keys.export_job(job_id)], [token, f"{media_s:.3f}"])

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


def claim_keys(spec: ExportSpec) -> list[str]:
    """The Redis keys of the claims on the keys a job writes (an export's video and poster, a
    snapshot's picture)."""
    dest = spec.destination
    return list(dict.fromkeys(keys.destination_claim(dest.bucket, k) for k in spec.written_keys))


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
