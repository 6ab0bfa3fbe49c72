"""The one place that knows the Redis key layout; everything else asks here."""

from __future__ import annotations

PREFIX = "resourced"

ACTIVE_EXPORTS = f"{PREFIX}:exports:active"  # ZSET job_id -> enqueue time (queued + running)
EXPORT_STATS = f"{PREFIX}:stats:export"  # HASH of measured export speed, for TimeWait
WORKERS = f"{PREFIX}:workers:"  # prefix of one STRING per live worker, with a heartbeat TTL


def export_job(job_id: str) -> str:
    """HASH: the job record. Every per-job key shares the `{job_id}` hash tag, so a transition
    over a job's record, lease and uploads runs on one Redis Cluster slot."""
    return f"{PREFIX}:export:{{{job_id}}}"


def active_exports_of(user: str) -> str:
    return f"{PREFIX}:exports:active:user:{user}"


def worker(name: str) -> str:
    return f"{WORKERS}{name}"


def session(session_id: str) -> str:
    return f"{PREFIX}:session:{session_id}"


def restore_job(task_id: str) -> str:
    return f"{PREFIX}:restore:{task_id}"


EXPORT_METRICS = f"{PREFIX}:metrics:exports"  # HASH of cluster-wide export counters and sums
REAPER_LOCK = f"{PREFIX}:lock:reaper"  # one worker reaps at a time


def imgbed_owner_lock(key: str) -> str:
    return f"{PREFIX}:imgbed:lock:{key}"


def user_restore_job(user: str, task_id: str) -> str:
    """A restore record, per user: another user's task_id is neither revealed nor blocked
    (neither part can hold ":", so this never meets a restore_job key)."""
    return f"{PREFIX}:restore:{user}:{task_id}"


def active_restores_of(user: str) -> str:
    return f"{PREFIX}:restores:active:user:{user}"  # ZSET record ref -> created time


def restore_admission_lock(user: str) -> str:
    return f"{PREFIX}:lock:restore-admission:{user}"


def rate_limit(action: str, user: str, window: int) -> str:
    return f"{PREFIX}:ratelimit:{action}:{user}:{window}"  # a counter for one fixed window


def destination_claim(bucket: str, key: str) -> str:
    """STRING (JSON {owner, writer, holders: {job_id: admission token}}): who an export's
    destination key is reserved for, from admission until the jobs writing it end."""
    return f"{PREFIX}:claim:{bucket}/{key}"


def archive_playlists(recording: str) -> str:
    """HASH playlist key -> its summary (ETag, span, ended) for one recording (a digest of
    bucket, region and folder): the archive index, docs/archive-index.md."""
    return f"{PREFIX}:archive:{recording}:playlists"


def archive_segments(recording: str, playlist: str) -> str:
    """STRING: a playlist's packed segment list, prefixed with the ETag of the version it was read
    from (`playlist` is a digest of the playlist's key: one list per playlist)."""
    return f"{PREFIX}:archive:{recording}:segments:{playlist}"


def export_lease(job_id: str) -> str:
    """STRING: the random token of the attempt holding the job, with a TTL its worker renews."""
    return f"{PREFIX}:export:{{{job_id}}}:lease"


def export_uploads(job_id: str) -> str:
    """HASH UploadId -> JSON {token, bucket, key, region}: multipart uploads the job's attempts began."""
    return f"{PREFIX}:export:{{{job_id}}}:uploads"


EXPORT_REGISTRY = f"{PREFIX}:exports:registry"  # ZSET job_id -> created time, every user's jobs


def export_registry_of(user: str) -> str:
    """ZSET job_id -> created time: a user's exports, so listing them newest first is a read."""
    return f"{PREFIX}:exports:registry:user:{user}"


PARKED_EXPORTS = f"{PREFIX}:exports:parked"  # ZSET job_id -> when it last parked for a restore


def export_events(job_id: str) -> str:
    """Pub/sub channel announcing a job's end (ready or failed) to polls held open for it."""
    return f"{PREFIX}:events:export:{job_id}"


def export_callback(job_id: str) -> str:
    """STRING: the CallbackUrl the latest request of an export named (not part of its identity).
    Outside `export:*`, where every key is a job's HASH or belongs to its attempts."""
    return f"{PREFIX}:callback:export:{job_id}"


def export_callback_sent(job_id: str, ended_at: str) -> str:
    """STRING: set once a job end's callback is queued, so one end is announced once."""
    return f"{PREFIX}:callback:export-sent:{job_id}:{ended_at}"


def spans_reply(request_id: str) -> str:
    """LIST: a worker's answer to one recording-spans request, popped by the waiting web request."""
    return f"{PREFIX}:spans:reply:{request_id}"


def archive_listing(recording: str) -> str:
    """STRING: a recording folder's playlist listing and when its LIST was made, kept for
    recording-spans pages (workers/archive/kept_listing.py, docs/archive-index.md)."""
    return f"{PREFIX}:archive:{recording}:listing"


def archive_relisting(recording: str) -> str:
    """STRING (NX, expiring): held by the one spans task re-listing a recording's folder after
    its answer, so a burst of pages makes one LIST."""
    return f"{PREFIX}:archive:{recording}:relisting"
