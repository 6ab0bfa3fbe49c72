"""The one place that reads configuration: environment variables, read once, typed.

Names in section 4 of the API contract are fixed; operators and outside test suites use them.
Everything else has a default chosen for a production media service, documented beside it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting is missing or malformed; the process must not start with it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


MAX_LONG_POLL_S = 25.0  # a held poll must end well inside a 30 s proxy or client read timeout


HOST_ZONE_NAMES = frozenset({"localtime", "posixrules"})  # files the zone database links to the host's


@cache
def _tzinfo(name: str) -> tzinfo:
    """An IANA zone by name; ConfigError for a name the zone database does not know."""
    if name.upper() == "UTC":
        return UTC
    if name.lower() in HOST_ZONE_NAMES:  # the result would follow the host's zone after all
        raise ConfigError(
            f"time zone {name!r} names the host's zone: give an IANA name such as Asia/Shanghai"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {name!r} (an IANA name such as Europe/Paris)") from exc


def _zone(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    try:
        _tzinfo(value)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from exc
    return value


def _bounded(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    value = _float(env, name, default)
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value


@dataclass(frozen=True)
class Settings:
    """Every setting the web, worker and CLI processes use."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = ""  # empty: the Redis above
    s3_endpoint_url: str | None = None  # None: AWS
    aws_region: str = "us-east-1"
    secret_key: str = field(default="", repr=False)
    allowed_buckets: tuple[str, ...] = ()  # empty: none; ("*",): any
    session_backend: str = "signed"  # "signed" tokens, or "redis" (a login service's store)
    session_ttl_s: int = 86_400
    imgbed_bucket: str = ""
    imgbed_prefix: str = ""
    imgbed_max_bytes: int = 20 * MIB
    imgbed_max_pixels: int = 50_000_000  # a decompression bomb declares far more than any photo
    callback_secret: str = field(default="", repr=False)
    callback_allowlist: tuple[str, ...] = ()
    callback_timeout_s: float = 5.0
    callback_retry_hours: float = 6.0
    callback_backoff_s: float = 30.0  # first retry delay; doubles (with jitter) up to an hour
    restore_poll_s: int = 300  # Glacier restores take minutes (Expedited) to hours (Bulk)
    restore_days: int = 3
    restore_tier: str = "Standard"
    max_active_exports: int = 200
    max_active_exports_per_user: int = 20
    max_duration_ms: int = 3 * 3600 * 1000  # longer clips are a different product (bulk archive copy)
    job_ttl_s: int = 86_400
    # How long a cancelled export answers ErrorCode 9 to polls of its request (contract section 6),
    # so every client polling it learns; after that an identical request starts afresh.
    cancel_hold_s: int = 60
    presign_ttl_s: int = 86_400
    public_base_url: str = ""  # when set, VideoPath/ImagePath are {base}/{bucket}/{key}, unsigned
    work_dir: str = ""  # empty: the system temp directory
    export_soft_limit_s: int = 3_000
    export_hard_limit_s: int = 3_300
    prefetch_segments: int = 4  # segments downloaded ahead; each is seconds of video, a few MB
    upload_part_mib: int = 8  # small enough that parts ship while a short clip is still muxing
    upload_concurrency: int = 4
    worker_queues: tuple[str, ...] = ()  # empty: decided at start from the node's encoders
    worker_metrics_port: int = 0  # >0: each worker serves /metrics on this port (its own and the cluster's)
    worker_concurrency: int = 0  # 0: suits the node (CPU count; NVENC session cap on GPU workers)
    heartbeat_ttl_s: int = 30  # a worker silent this long is gone
    s3_max_attempts: int = 6  # botocore's own retries (adaptive mode) before the task retries
    # Exports complete their objects with If-None-Match: * / If-Match: <etag>, so S3 itself refuses
    # a stale or foreign writer; off only for S3-compatible endpoints that reject those headers.
    s3_conditional_writes: bool = True
    task_retry_base_s: float = 5.0  # task retries back off from here, doubling, with full jitter
    gpu_max_sessions: int = 3  # NVENC's per-card session cap on consumer cards
    encode_preset: str = "veryfast"
    encode_crf: int = 26  # surveillance scenes are mostly static; 26 keeps detail at a low rate
    encode_max_height: int = 1080
    smart_cut: bool = True  # H.264: re-encode only the partial GOPs at the ends
    copy_edit_list: bool = True  # export_type 0 presents from the requested frame (MP4 edit list)
    port: int = 8000
    log_level: str = "INFO"
    use_nvenc: bool = False  # set by `workers.runtime.launch --gpu` for the worker it starts
    web_concurrency: int = 0  # gunicorn processes; 0: one per core with gevent, two with sync workers
    web_threads: int = 1
    metrics_multiproc_dir: str = ""  # prometheus-client's multiprocess directory (gunicorn sets it)
    restore_max_active_per_user: int = 10  # restoring jobs per user: each file is a billed request
    restore_max_files_per_job: int = 100  # one job's HEAD + RestoreObject burst stays small
    test_callback_per_minute: int = 5  # a network test is occasional; more is probing or abuse
    flower_basic_auth: str = field(default="", repr=False)  # user:password; Flower refuses without
    # The archive index (docs/archive-index.md): a cache in Redis, so entries expire; a week keeps
    # a recording that is exported from now and then warm, and lets an idle one's entries go.
    archive_index_ttl_s: int = 7 * 86_400
    # One playlist's packed segment list is cached up to this size (a day of 2 s segments packs
    # to ~0.3 MiB); a bigger one is streamed from S3 again when needed, so Redis stays bounded.
    archive_index_max_blob_kib: int = 4096
    # A playlist last modified this long before the range starts cannot hold it (a recorder writes
    # a playlist after its segments); the margin absorbs the recorder's clock running ahead.
    archive_clock_skew_s: int = 3600
    # The archive index's Redis; empty: the job Redis above. A separate one may evict (allkeys-lru)
    # while the job Redis must not (noeviction): see deploy/README.md.
    index_redis_url: str = ""
    # PROGRAM-DATE-TIME written without an offset is local time in this zone (IANA name), never
    # the host's: some cameras write local time bare, and results must not move with a worker's TZ.
    pdt_zone: str = "UTC"
    # A running attempt holds its job by a lease its worker renews every third of this, whatever
    # the export is doing; the reaper requeues a job only once the lease has expired.
    lease_ttl_s: int = 30
    max_export_attempts: int = 3  # a job whose workers keep vanishing ends as ErrorCode 6, not a loop
    # A job waiting for a Glacier restore keeps its record this long: Bulk and Deep Archive
    # restores take up to 48 h, plus polling slack.
    restore_wait_s: int = 52 * 3600
    task_max_retries: int = 5  # transient failures (S3 5xx, network) retried this often, then ErrorCode 6
    # A poll of an unfinished export is held open up to this long and answered the moment the job
    # ends, so a client obeying TimeWait is not kept waiting for a finished job. 0 turns it off.
    # Short enough to pass proxies' and clients' usual 10-60 s read timeouts with room to spare.
    long_poll_s: float = 5.0
    web_worker_class: str = "gevent"  # held polls and slow clients park a greenlet, not a worker
    web_connections: int = 1000  # per gunicorn process: held polls + slow clients
    web_keepalive: int = 0  # seconds; 0: a refused oversized body cannot hold the connection
    # Worker memory (deploy/README.md, "Worker memory"): a worker child that ends a task above
    # this resident size is replaced before its next one. A child starts at ~70 MiB and a 1080p
    # transcode peaks at ~200 MiB; without a bound, FFmpeg's buffer pools and glibc's arenas keep
    # what a long run's peaks took (children grew to 260-320 MiB), so each child stays under
    # this plus one task's peak. 0 turns it off.
    worker_max_memory_per_child_mib: int = 300
    worker_max_tasks_per_child: int = 200  # also replaced after this many tasks; 0: never
    # glibc makes up to 8 x cores malloc arenas per process, each keeping freed memory; encoder
    # threads touch many. 2 keeps contention low and resident size flat. 0: glibc's default.
    malloc_arena_max: int = 2

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def archive_index_redis_url(self) -> str:
        """Where the archive index lives: its own Redis when one is named, else the job Redis."""
        return self.index_redis_url or self.redis_url

    @property
    def pdt_tzinfo(self) -> tzinfo:
        """The zone of offset-less PROGRAM-DATE-TIME values (`pdt_zone`, checked at start)."""
        return _tzinfo(self.pdt_zone)

    def bucket_allowed(self, bucket: str) -> bool:
        return "*" in self.allowed_buckets or bucket in self.allowed_buckets

    def require_callback_secret(self) -> str:
        if not self.callback_secret.startswith("whsec_"):
            raise ConfigError("RESOURCED_CALLBACK_SECRET must be set, as whsec_ + base64")
        return self.callback_secret

    def require_secret_key(self) -> str:
        if len(self.secret_key) < 16:
            raise ConfigError("RESOURCED_SECRET_KEY must be set (at least 16 characters)")
        return self.secret_key

    def replace(self, **changes: object) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        backend = env.get("RESOURCED_SESSION_BACKEND", "signed").strip() or "signed"
        if backend not in {"signed", "redis"}:
            raise ConfigError(f"RESOURCED_SESSION_BACKEND must be 'signed' or 'redis', got {backend!r}")
        return cls(
            redis_url=env.get("RESOURCED_REDIS_URL", "").strip() or cls.redis_url,
            broker_url=env.get("CELERY_BROKER_URL", "").strip(),
            s3_endpoint_url=env.get("RESOURCED_S3_ENDPOINT_URL", "").strip() or None,
            aws_region=env.get("AWS_DEFAULT_REGION", "").strip() or cls.aws_region,
            secret_key=env.get("RESOURCED_SECRET_KEY", ""),
            allowed_buckets=_list(env, "RESOURCED_ALLOWED_BUCKETS"),
            session_backend=backend,
            session_ttl_s=_int(env, "RESOURCED_SESSION_TTL", cls.session_ttl_s, 1),
            imgbed_bucket=env.get("RESOURCED_IMGBED_BUCKET", "").strip(),
            imgbed_prefix=env.get("RESOURCED_IMGBED_PREFIX", "").strip().strip("/"),
            imgbed_max_bytes=_int(env, "RESOURCED_IMGBED_MAX_BYTES", cls.imgbed_max_bytes, 1),
            imgbed_max_pixels=_int(env, "RESOURCED_IMGBED_MAX_PIXELS", cls.imgbed_max_pixels, 1),
            callback_secret=env.get("RESOURCED_CALLBACK_SECRET", ""),
            callback_allowlist=_list(env, "RESOURCED_CALLBACK_ALLOWLIST"),
            callback_timeout_s=_float(env, "RESOURCED_CALLBACK_TIMEOUT", cls.callback_timeout_s),
            callback_retry_hours=_float(env, "RESOURCED_CALLBACK_RETRY_HOURS", cls.callback_retry_hours),
            callback_backoff_s=_float(env, "RESOURCED_CALLBACK_BACKOFF", cls.callback_backoff_s),
            restore_poll_s=_int(env, "RESOURCED_RESTORE_POLL_S", cls.restore_poll_s, 1),
            restore_days=_int(env, "RESOURCED_RESTORE_DAYS", cls.restore_days, 1),
            restore_tier=env.get("RESOURCED_RESTORE_TIER", "").strip() or cls.restore_tier,
            max_active_exports=_int(env, "RESOURCED_MAX_ACTIVE_EXPORTS", cls.max_active_exports, 1),
            max_active_exports_per_user=_int(
                env, "RESOURCED_MAX_ACTIVE_EXPORTS_PER_USER", cls.max_active_exports_per_user, 1
            ),
            max_duration_ms=_int(env, "RESOURCED_MAX_DURATION_MS", cls.max_duration_ms, 1),
            job_ttl_s=_int(env, "RESOURCED_JOB_TTL", cls.job_ttl_s, 60),
            cancel_hold_s=_int(env, "RESOURCED_CANCEL_HOLD_S", cls.cancel_hold_s, 1),
            presign_ttl_s=min(_int(env, "RESOURCED_PRESIGN_TTL", cls.presign_ttl_s, 60), 7 * 86_400),
            public_base_url=env.get("RESOURCED_PUBLIC_BASE_URL", "").strip().rstrip("/"),
            work_dir=env.get("RESOURCED_WORK_DIR", "").strip(),
            export_soft_limit_s=_int(env, "RESOURCED_EXPORT_SOFT_LIMIT", cls.export_soft_limit_s, 10),
            export_hard_limit_s=_int(env, "RESOURCED_EXPORT_HARD_LIMIT", cls.export_hard_limit_s, 10),
            prefetch_segments=_int(env, "RESOURCED_PREFETCH_SEGMENTS", cls.prefetch_segments, 1),
            upload_part_mib=_int(env, "RESOURCED_UPLOAD_PART_MIB", cls.upload_part_mib, 5),
            upload_concurrency=_int(env, "RESOURCED_UPLOAD_CONCURRENCY", cls.upload_concurrency, 1),
            worker_queues=_list(env, "RESOURCED_WORKER_QUEUES"),
            worker_concurrency=_int(env, "RESOURCED_WORKER_CONCURRENCY", 0, 0),
            worker_metrics_port=_int(env, "RESOURCED_WORKER_METRICS_PORT", 0, 0),
            gpu_max_sessions=_int(env, "RESOURCED_GPU_MAX_SESSIONS", cls.gpu_max_sessions, 1),
            heartbeat_ttl_s=_int(env, "RESOURCED_HEARTBEAT_TTL", cls.heartbeat_ttl_s, 2),
            s3_max_attempts=_int(env, "RESOURCED_S3_MAX_ATTEMPTS", cls.s3_max_attempts, 1),
            s3_conditional_writes=_bool(env, "RESOURCED_S3_CONDITIONAL_WRITES", cls.s3_conditional_writes),
            task_retry_base_s=_float(env, "RESOURCED_TASK_RETRY_BASE_S", cls.task_retry_base_s),
            encode_preset=env.get("RESOURCED_ENCODE_PRESET", "").strip() or cls.encode_preset,
            encode_crf=_int(env, "RESOURCED_ENCODE_CRF", cls.encode_crf, 0),
            encode_max_height=_int(env, "RESOURCED_ENCODE_MAX_HEIGHT", cls.encode_max_height, 16),
            smart_cut=_bool(env, "RESOURCED_SMART_CUT", cls.smart_cut),
            copy_edit_list=_bool(env, "RESOURCED_COPY_EDIT_LIST", cls.copy_edit_list),
            port=_int(env, "PORT", cls.port, 1),
            log_level=(env.get("RESOURCED_LOG_LEVEL", "").strip() or cls.log_level).upper(),
            use_nvenc=_bool(env, USE_NVENC_ENV, cls.use_nvenc),
            web_concurrency=_int(env, "WEB_CONCURRENCY", 0, 0),
            web_threads=_int(env, "WEB_THREADS", cls.web_threads, 1),
            metrics_multiproc_dir=env.get(METRICS_DIR_ENV, "").strip(),
            restore_max_active_per_user=_int(
                env, "RESOURCED_RESTORE_MAX_ACTIVE_PER_USER", cls.restore_max_active_per_user, 1
            ),
            restore_max_files_per_job=_int(
                env, "RESOURCED_RESTORE_MAX_FILES_PER_JOB", cls.restore_max_files_per_job, 1
            ),
            test_callback_per_minute=_int(
                env, "RESOURCED_TEST_CALLBACK_PER_MINUTE", cls.test_callback_per_minute, 1
            ),
            flower_basic_auth=env.get("FLOWER_BASIC_AUTH", "").strip(),
            archive_index_ttl_s=_int(env, "RESOURCED_ARCHIVE_INDEX_TTL", cls.archive_index_ttl_s, 60),
            archive_index_max_blob_kib=_int(
                env, "RESOURCED_ARCHIVE_INDEX_MAX_BLOB_KIB", cls.archive_index_max_blob_kib, 0
            ),
            archive_clock_skew_s=_int(env, "RESOURCED_ARCHIVE_CLOCK_SKEW_S", cls.archive_clock_skew_s, 0),
            index_redis_url=env.get("RESOURCED_INDEX_REDIS_URL", "").strip(),
            pdt_zone=_zone(env, "RESOURCED_PDT_ZONE", cls.pdt_zone),
            lease_ttl_s=_int(env, "RESOURCED_LEASE_TTL_S", cls.lease_ttl_s, 2),
            max_export_attempts=_int(env, "RESOURCED_MAX_EXPORT_ATTEMPTS", cls.max_export_attempts, 1),
            restore_wait_s=_int(env, "RESOURCED_RESTORE_WAIT_S", cls.restore_wait_s, 60),
            task_max_retries=_int(env, "RESOURCED_TASK_MAX_RETRIES", cls.task_max_retries, 0),
            long_poll_s=_bounded(env, "RESOURCED_LONG_POLL_S", cls.long_poll_s, 0.0, MAX_LONG_POLL_S),
            web_worker_class=env.get("WEB_WORKER_CLASS", "").strip() or cls.web_worker_class,
            web_connections=_int(env, "WEB_CONNECTIONS", cls.web_connections, 1),
            web_keepalive=_int(env, "WEB_KEEPALIVE", cls.web_keepalive, 0),
            worker_max_memory_per_child_mib=_int(
                env, "RESOURCED_WORKER_MAX_MEMORY_PER_CHILD_MIB", cls.worker_max_memory_per_child_mib, 0
            ),
            worker_max_tasks_per_child=_int(
                env, "RESOURCED_WORKER_MAX_TASKS_PER_CHILD", cls.worker_max_tasks_per_child, 0
            ),
            malloc_arena_max=_int(env, MALLOC_ARENA_ENV, cls.malloc_arena_max, 0),
        )

    def worker_process_env(self) -> dict[str, str]:
        """Variables the worker's processes need before they start (glibc reads MALLOC_ARENA_MAX
        once, at process start, so the launcher puts it into the environment it execs with)."""
        return {MALLOC_ARENA_ENV: str(self.malloc_arena_max)} if self.malloc_arena_max else {}

    def check_web(self) -> None:
        """What the web process cannot run without (raises ConfigError): the secret signs session
        tokens and keys the default export folders (whatever the session backend)."""
        self.require_secret_key()

    def check_worker(self, queues: tuple[str, ...] | list[str]) -> None:
        """What a worker serving `queues` cannot run without: restore jobs end in a signed
        callback, so a worker that would take them must be able to sign."""
        if any(q in {"restore", "callback"} for q in queues):
            self.require_callback_secret()


USE_NVENC_ENV = "RESOURCED_USE_NVENC"
MALLOC_ARENA_ENV = "MALLOC_ARENA_MAX"  # glibc's own name; an operator's value is kept
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client reads this name itself


@dataclass(frozen=True)
class ClientSettings:
    """Defaults of the `resourced` client commands, from the client's own environment."""

    url: str = "http://127.0.0.1:8000"
    session: str = ""
    user: str = ""
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientSettings:
        env = os.environ if env is None else env
        return cls(
            url=env.get("RESOURCED_URL", "").strip() or cls.url,
            session=env.get("RESOURCED_SESSION", "").strip(),
            user=env.get("RESOURCED_USER", "").strip(),
            region=env.get("AWS_DEFAULT_REGION", "").strip() or cls.region,
        )


def environ_with(**overrides: str) -> dict[str, str]:
    """This process's environment plus `overrides`, for a child process (the worker launcher
    hands its decisions to the Celery worker it execs this way)."""
    return {**os.environ, **overrides}


def set_default_env(name: str, value: str) -> str:
    """Set a variable a library reads by itself (prometheus-client's multiprocess directory)
    unless the operator set it; returns the value in force."""
    return os.environ.setdefault(name, value)


def fail_fast(check: Callable[[], object]) -> None:
    """Run a start-up check; a ConfigError stops the process with one line, not a traceback."""
    try:
        check()
    except ConfigError as exc:
        print(f"resourced: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


_cached: Settings | None = None


def get_settings() -> Settings:
    """Settings of this process, read from the environment on first use (never at import)."""
    global _cached
    if _cached is None:
        _cached = Settings.from_env()
    return _cached
