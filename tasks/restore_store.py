"""Restore job records: per-file status of a Glacier restore and its callback deliveries.

A record is one JSON value. The API creates it (once per task_id, so a resubmission does not
start a second job); afterwards only the job's own tasks, one at a time, change it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any

import redis

from tasks import keys

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


class RestoreJobStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def create(self, job: RestoreJob) -> bool:
        """False when a job with that task_id exists already (the request is then idempotent)."""
        return bool(self.redis.set(keys.restore_job(job.task_id), job.to_json(), nx=True, ex=RECORD_TTL_S))

    def get(self, task_id: str) -> RestoreJob | None:
        raw = self.redis.get(keys.restore_job(task_id))
        return RestoreJob.from_json(raw) if raw else None

    def save(self, job: RestoreJob) -> None:
        self.redis.set(keys.restore_job(job.task_id), job.to_json(), ex=RECORD_TTL_S)

    def delete(self, task_id: str) -> None:
        self.redis.delete(keys.restore_job(task_id))
