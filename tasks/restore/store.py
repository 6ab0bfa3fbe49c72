"""Restore job records: per-file status of a Glacier restore and its callback deliveries.

A record is one JSON value, keyed by user and task_id, so task ids are per user: another
user's id is neither revealed nor blocked. The API creates it (once per user and task_id, so a
resubmission does not start a second job) through admission: a per-user limit on jobs still
restoring and on files per job. Afterwards only the job's own tasks, one at a time, change it;
they name it by `ref` ("user:task_id").
"""

from __future__ import annotations

import json
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from enum import Enum, IntEnum
from typing import Any

import redis

from tasks.platform import keys

RECORD_TTL_S = 14 * 86_400  # long enough to outlive the longest restore plus its callback retries


class FileCode(IntEnum):
    """PutRestoreResult's file_code."""

    RESTORED = 0
    NOT_FOUND = 1
    FAILED = 2


@dataclass
class RestoreFile:
    name: str
    key: str
    state: str = "pending"  # pending, restoring, settled
    code: int = -1  # FileCode once settled
    reason: str = ""


@dataclass
class RestoreJob:
    task_id: str
    user: str
    bucket: str
    region: str
    file_dir: str
    callback_url: str  # empty for restores an export started itself
    days: int
    tier: str
    files: list[RestoreFile]
    state: str = "restoring"  # restoring, settled, delivered, delivery_failed
    created_at: float = field(default_factory=time.time)
    settled_at: float = 0.0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    legacy_key: bool = False  # created before per-user ids: lives at keys.restore_job(task_id)

    @property
    def ref(self) -> str:
        """How tasks name the record: user ids and task ids cannot hold ":"."""
        return self.task_id if self.legacy_key else f"{self.user}:{self.task_id}"

    @property
    def settled(self) -> bool:
        return all(f.state == "settled" for f in self.files)

    @property
    def code(self) -> int:
        return 0 if all(f.code == FileCode.RESTORED for f in self.files) else 1

    @property
    def message(self) -> str:
        failed = [f for f in self.files if f.code != FileCode.RESTORED]
        if not failed:
            return "all files restored"
        return f"{len(failed)} of {len(self.files)} file(s) not restored"

    def file_codes(self) -> dict[str, int]:
        return {f.name: max(f.code, 0) if f.state == "settled" else int(FileCode.FAILED) for f in self.files}

    def public(self) -> dict[str, Any]:
        """What GET /restore/<task_id> shows: no callback secrets, the per-file status."""
        return {
            "task_id": self.task_id,
            "state": self.state,
            "file_dir": self.file_dir,
            "code": self.code if self.settled else None,
            "message": self.message if self.settled else "restoring",
            "file_list_status": [
                {"file_name": f.name, "file_code": f.code if f.state == "settled" else None, "state": f.state}
                for f in self.files
            ],
            "callback_attempts": self.attempts,
            "created_at": self.created_at,
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> RestoreJob:
        data = json.loads(text)
        data["files"] = [RestoreFile(**f) for f in data["files"]]
        return cls(**data)


class Admission(Enum):
    CREATED = "created"
    EXISTS = "exists"  # this user already has a job with that task_id: the request is idempotent
    TOO_MANY_FILES = "too_many_files"
    BUSY = "busy"  # the user has as many jobs restoring as allowed


def _key(ref: str) -> str:
    user, sep, task_id = ref.partition(":")
    return keys.user_restore_job(user, task_id) if sep else keys.restore_job(ref)


class RestoreJobStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def create(self, job: RestoreJob) -> bool:
        """False when this user has a job with that task_id already."""
        return bool(self.redis.set(_key(job.ref), job.to_json(), nx=True, ex=RECORD_TTL_S))

    def get(self, ref: str) -> RestoreJob | None:
        raw = self.redis.get(_key(ref))
        if not raw:
            return None
        job = RestoreJob.from_json(raw)
        job.legacy_key = ":" not in ref
        return job

    def get_for(self, user: str, task_id: str) -> RestoreJob | None:
        return self.get(f"{user}:{task_id}")

    def save(self, job: RestoreJob) -> None:
        self.redis.set(_key(job.ref), job.to_json(), ex=RECORD_TTL_S)

    def delete(self, ref: str) -> None:
        self.redis.delete(_key(ref))
        self.redis.zrem(keys.active_restores_of(ref.partition(":")[0]), ref)

    def restoring_count(self, user: str) -> int:
        """Jobs of `user` still restoring; finished or expired ones are dropped from the index."""
        index = keys.active_restores_of(user)
        count = 0
        for raw_ref in self.redis.zrange(index, 0, -1):
            ref = raw_ref.decode() if isinstance(raw_ref, bytes) else str(raw_ref)
            job = self.get(ref)
            if job is None or job.state != "restoring":
                self.redis.zrem(index, ref)
            else:
                count += 1
        return count

    def admit(self, job: RestoreJob, max_active: int, max_files: int) -> Admission:
        """Create the job unless a limit says no; serialised per user, so two requests at once
        cannot both take the last slot."""
        lock = self.redis.lock(keys.restore_admission_lock(job.user), timeout=10, blocking_timeout=5)
        if not lock.acquire():
            return Admission.BUSY
        try:
            if self.redis.exists(_key(job.ref)):
                return Admission.EXISTS
            if len(job.files) > max_files:
                return Admission.TOO_MANY_FILES
            if self.restoring_count(job.user) >= max_active:
                return Admission.BUSY
            if not self.create(job):
                return Admission.EXISTS
            self.redis.zadd(keys.active_restores_of(job.user), {job.ref: job.created_at})
            self.redis.expire(keys.active_restores_of(job.user), RECORD_TTL_S)
            return Admission.CREATED
        finally:
            with suppress(redis.exceptions.LockError):
                lock.release()
