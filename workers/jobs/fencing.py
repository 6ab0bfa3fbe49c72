"""What an export attempt may write, and when: the fence between an attempt and its side effects.

A running attempt keeps its lease alive from a thread of its own (so a decode check, a slow
upload or botocore's retries never look like a dead worker) and checks the fence, atomically in
Redis, right before each side effect. Whatever an attempt cannot check atomically with the S3
call that follows (a fence check and a CompleteMultipartUpload are two requests) is closed from
the other side: every multipart upload is recorded on the job before a byte is sent, and a new
attempt aborts the uploads of the attempts before it and then adopts any object one of them had
already completed. After that abort, no earlier attempt can complete anything, so a frozen
attempt that wakes up changes nothing. deploy/README.md walks through the interleavings.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from types import TracebackType
from typing import Protocol

import redis

from tasks.exports.leases import AttemptLease, LeaseLost, RecordedUpload
from tasks.storage import ObjectNotFound, ObjectStore, Uploaded
from tasks.tenancy.ownership import JOB_META

log = logging.getLogger(__name__)


class Fence(Protocol):
    adopts: bool  # whether objects written by earlier attempts of the job are adopted
    token: str  # names this admission of the job (not the attempt): what its attempts may adopt

    def check(self) -> None: ...

    def record_upload(self, bucket: str, key: str, region: str, upload_id: str) -> None: ...

    def earlier_uploads(self) -> list[RecordedUpload]: ...

    def forget_upload(self, upload_id: str) -> None: ...


class NoJobFence:
    """The fence of an export run outside any job (the benchmark, a unit test): there is no other
    attempt to fence off. Never a default: a caller running outside a job says so by passing
    NO_JOB_FENCE, and everything a job runs passes its LeaseKeeper."""

    adopts = False
    token = ""

    def check(self) -> None:
        return None

    def record_upload(self, bucket: str, key: str, region: str, upload_id: str) -> None:
        return None

    def earlier_uploads(self) -> list[RecordedUpload]:
        return []

    def forget_upload(self, upload_id: str) -> None:
        return None


NO_JOB_FENCE = NoJobFence()


# A renewal is also how a running attempt learns that its owner cancelled the job (the renewal
# is refused): at most this long after a cancel, its next progress report stops it.
CANCEL_NOTICE_S = 2.0


class LeaseKeeper:
    """Renews an attempt's lease every third of its TTL (at least every CANCEL_NOTICE_S), whatever
    the export is doing, and fences the attempt's side effects. Once a renewal finds the job
    moved on, every check fails fast."""

    adopts = True

    def __init__(self, lease: AttemptLease, keep_uploads_s: int, token: str) -> None:
        self.lease, self.keep_uploads_s, self.token = lease, keep_uploads_s, token
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread = threading.Thread(target=self._keepalive, name="lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _keepalive(self) -> None:
        every = max(0.2, min(self.lease.ttl_s / 3, CANCEL_NOTICE_S))
        while not self._stop.wait(every):
            try:
                if not self.lease.renew():
                    self._lost.set()
                    log.warning("lease lost", extra={"job_id": self.lease.job_id})
                    return
            except redis.RedisError as exc:  # Redis away: keep trying; the lease may still be ours
                log.warning("lease not renewed", extra={"reason": str(exc)})

    def raise_if_lost(self) -> None:
        """Cheap, for progress callbacks: no Redis round trip."""
        if self._lost.is_set():
            raise LeaseLost(f"job {self.lease.job_id}: attempt {self.lease.token[:8]} lost its lease")

    def check(self) -> None:
        self.raise_if_lost()
        self.lease.check()

    def record_upload(self, bucket: str, key: str, region: str, upload_id: str) -> None:
        self.raise_if_lost()
        self.lease.record_upload(bucket, key, region, upload_id, self.keep_uploads_s)

    def earlier_uploads(self) -> list[RecordedUpload]:
        return self.lease.earlier_uploads()

    def forget_upload(self, upload_id: str) -> None:
        self.lease.forget_upload(upload_id)


def take_over(fence: Fence, store: ObjectStore) -> int:
    """Abort every multipart upload earlier attempts of this job began; returns how many.

    They are all fenced off (the job's token is no longer theirs), and after the abort
    none of them can complete, however long it was frozen."""
    earlier = fence.earlier_uploads()
    for upload in earlier:
        store.abort_upload(upload.bucket, upload.key, upload.upload_id, upload.region)
        fence.forget_upload(upload.upload_id)
        log.warning(
            "aborted an earlier attempt's upload", extra={"key": upload.key, "attempt": upload.token[:8]}
        )
    return len(earlier)


def object_mark(fence: Fence, source_keys: list[str]) -> str:
    """What an export's objects carry in JOB_META: the admission, and the segments it was cut
    from. Only an object with the same mark is adopted, so a later admission of the same request,
    never adopts a different cut (attempts of one admission cut the same segments: see
    export_attempt.first_view)."""
    digest = hashlib.sha256("\n".join(source_keys).encode()).hexdigest()[:16]
    return f"{fence.token}/{digest}"


def adopted(
    fence: Fence, store: ObjectStore, bucket: str, key: str, region: str, mark: str
) -> Uploaded | None:
    """The object an earlier attempt of this admission completed before it was fenced off, if
    any. Ask only after take_over(): from then on no earlier attempt can complete one."""
    if not fence.adopts:
        return None
    try:
        info = store.head(bucket, key, region)
    except ObjectNotFound:
        return None
    if info.metadata.get(JOB_META) != mark:
        return None
    log.info("adopting an earlier attempt's object", extra={"key": key})
    return Uploaded(etag=info.etag, version_id=info.version_id)


def completion_failed(fence: Fence) -> None:
    """An upload step failed: if a newer attempt aborted our upload, say so (LeaseLost)."""
    fence.check()
