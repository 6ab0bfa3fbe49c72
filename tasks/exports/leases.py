"""Leases and fencing for export attempts: which attempt may still change the world.

An attempt that claimed a job holds a lease (a Redis key with a TTL) that its worker renews
independently of progress. The reaper requeues a running job only once that lease has expired,
as a new attempt number. The attempt number is the fencing token: every side effect an attempt
makes (recording its multipart UploadId, completing the upload, writing progress or the result)
is preceded by an atomic check in Redis that the job's current attempt is still its own, so an
attempt that was frozen and wakes up after a takeover finds out before it writes anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from tasks.exports.store import RESTORING_STEP
from tasks.platform import keys


class LeaseLost(Exception):
    """This attempt no longer owns its job: a newer attempt took over, or the job ended."""


# Renew the lease while the job's current attempt is ours and running (not parked for a restore).
_RENEW = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'step') == ARGV[3] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"""

# The fence itself: the same test, with no write.
_HOLDS = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
return 1
"""

# Record a multipart upload this attempt began, only while it still holds the job: an upload that
# is never recorded is never completed, and a recorded one can be aborted by a later attempt.
_RECORD_UPLOAD = """
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""


@dataclass(frozen=True)
class RecordedUpload:
    upload_id: str
    attempt: int
    bucket: str
    key: str
    region: str


class AttemptLease:
    """One attempt's hold on its job: renew it, check it, record uploads under it."""

    def __init__(self, client: redis.Redis, job_id: str, attempt: int, ttl_s: float) -> None:
        self.redis, self.job_id, self.attempt, self.ttl_s = client, job_id, attempt, ttl_s
        self._renew = client.register_script(_RENEW)
        self._holds = client.register_script(_HOLDS)
        self._record = client.register_script(_RECORD_UPLOAD)

    @property
    def _keys(self) -> list[str]:
        return [keys.export_job(self.job_id), keys.export_lease(self.job_id)]

    def renew(self) -> bool:
        """Extend the lease; False once the job moved on (the keepalive then stops)."""
        args: list[str | int] = [self.attempt, int(self.ttl_s * 1000), RESTORING_STEP]
        return bool(self._renew(keys=self._keys, args=args))

    def holds(self) -> bool:
        return bool(self._holds(keys=self._keys[:1], args=[self.attempt]))

    def check(self) -> None:
        """The fence: raise LeaseLost unless this attempt is still the job's running one."""
        if not self.holds():
            raise LeaseLost(f"job {self.job_id}: attempt {self.attempt} was fenced off")

    def record_upload(self, bucket: str, key: str, region: str, upload_id: str, keep_s: int) -> None:
        entry = json.dumps({"attempt": self.attempt, "bucket": bucket, "key": key, "region": region})
        job_keys = [keys.export_job(self.job_id), keys.export_uploads(self.job_id)]
        if not self._record(keys=job_keys, args=[self.attempt, upload_id, entry, keep_s]):
            raise LeaseLost(f"job {self.job_id}: attempt {self.attempt} was fenced off before uploading")

    def earlier_uploads(self) -> list[RecordedUpload]:
        """Uploads begun by attempts before this one: all fenced off, so this attempt may abort them."""
        found = []
        for raw_id, raw in self.redis.hgetall(keys.export_uploads(self.job_id)).items():
            data = json.loads(raw)
            if int(data["attempt"]) < self.attempt:
                upload_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                found.append(
                    RecordedUpload(
                        upload_id, int(data["attempt"]), data["bucket"], data["key"], data["region"]
                    )
                )
        return found

    def forget_upload(self, upload_id: str) -> None:
        self.redis.hdel(keys.export_uploads(self.job_id), upload_id)
