"""Leases and fencing for export attempts: which attempt may still change the world.

An attempt that started a job holds a lease (a Redis key with a TTL) that its worker renews
independently of progress. The reaper requeues a running job only once that lease has expired,
under a fresh random token. The token is the fencing token: every side effect an attempt makes
(recording its multipart UploadId, completing the upload, writing progress or the result) is
preceded by an atomic check in Redis (tasks/exports/scripts.py, the one place fencing lives)
that the job's current token is still its own, so an attempt that was frozen and wakes up after
a takeover, a cancel or the loss of its record finds out before it writes anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tasks.exports.store import ExportJobStore
from tasks.platform import keys


class LeaseLost(Exception):
    """This attempt no longer owns its job: a newer attempt took over, or the job ended."""


@dataclass(frozen=True)
class RecordedUpload:
    upload_id: str
    token: str  # the attempt that began it
    bucket: str
    key: str
    region: str


class AttemptLease:
    """One attempt's hold on its job: renew it, check it, record uploads under it."""

    def __init__(self, jobs: ExportJobStore, job_id: str, token: str, ttl_s: float) -> None:
        self.jobs, self.job_id, self.token, self.ttl_s = jobs, job_id, token, ttl_s

    def renew(self) -> bool:
        """Extend the lease; False once the job moved on (the keepalive then stops)."""
        job_keys = [keys.export_job(self.job_id), keys.export_lease(self.job_id)]
        return bool(self.jobs.run("RENEW", job_keys, [self.token, int(self.ttl_s * 1000)]))

    def holds(self) -> bool:
        return bool(self.jobs.run("HOLDS", [keys.export_job(self.job_id)], [self.token]))

    def check(self) -> None:
        """The fence: raise LeaseLost unless this attempt is still the job's running one."""
        if not self.holds():
            raise LeaseLost(f"job {self.job_id}: attempt {self.token[:8]} was fenced off")

    def record_upload(self, bucket: str, key: str, region: str, upload_id: str, keep_s: int) -> None:
        entry = json.dumps({"token": self.token, "bucket": bucket, "key": key, "region": region})
        job_keys = [keys.export_job(self.job_id), keys.export_uploads(self.job_id)]
        if not self.jobs.run("RECORD_UPLOAD", job_keys, [self.token, upload_id, entry, keep_s]):
            raise LeaseLost(f"job {self.job_id}: attempt {self.token[:8]} was fenced off before uploading")

    def earlier_uploads(self) -> list[RecordedUpload]:
        """Uploads begun by other attempts than this one: all fenced off (a job has one current
        token), so this attempt may abort them."""
        return [u for u in recorded_uploads(self.jobs, self.job_id) if u.token != self.token]

    def forget_upload(self, upload_id: str) -> None:
        forget_upload(self.jobs, self.job_id, upload_id)


def recorded_uploads(jobs: ExportJobStore, job_id: str) -> list[RecordedUpload]:
    """Every multipart upload the job's attempts recorded and nobody aborted or completed yet."""
    found = []
    for raw_id, raw in jobs.redis.hgetall(keys.export_uploads(job_id)).items():
        data = json.loads(raw)
        upload_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        token = str(data.get("token", data.get("attempt", "")))  # entries before tokens named attempts
        found.append(RecordedUpload(upload_id, token, data["bucket"], data["key"], data["region"]))
    return found


def forget_upload(jobs: ExportJobStore, job_id: str, upload_id: str) -> None:
    jobs.redis.hdel(keys.export_uploads(job_id), upload_id)
