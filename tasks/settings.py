"""The one place that reads configuration: environment variables, read once, typed.

Names in section 4 of the API contract are fixed; operators and outside test suites use them.
Everything else has a default chosen for a production media service, documented beside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

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
    task_retry_base_s: float = 5.0  # task retries back off from here, doubling, with full jitter
    reap_stale_s: int = 60  # a running job unchanged this long, on a gone worker, is requeued
    gpu_max_sessions: int = 3  # NVENC's per-card session cap on consumer cards
    encode_preset: str = "veryfast"
    encode_crf: int = 26  # surveillance scenes are mostly static; 26 keeps detail at a low rate
    encode_max_height: int = 1080
    smart_cut: bool = True  # H.264: re-encode only the partial GOPs at the ends
    copy_edit_list: bool = True  # export_type 0 presents from the requested frame (MP4 edit list)
    port: int = 8000
    # A poll of an unfinished export is held open up to this long and answered the moment the job
    # ends, so a client obeying TimeWait is not kept waiting for a finished job. 0 turns it off.
    # Short enough to pass proxies' and clients' usual 10-60 s read timeouts with room to spare.
    long_poll_s: float = 5.0

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url

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
            task_retry_base_s=_float(env, "RESOURCED_TASK_RETRY_BASE_S", cls.task_retry_base_s),
            reap_stale_s=_int(env, "RESOURCED_REAP_STALE_S", cls.reap_stale_s, 2),
            encode_preset=env.get("RESOURCED_ENCODE_PRESET", "").strip() or cls.encode_preset,
            encode_crf=_int(env, "RESOURCED_ENCODE_CRF", cls.encode_crf, 0),
            encode_max_height=_int(env, "RESOURCED_ENCODE_MAX_HEIGHT", cls.encode_max_height, 16),
            smart_cut=_bool(env, "RESOURCED_SMART_CUT", cls.smart_cut),
            copy_edit_list=_bool(env, "RESOURCED_COPY_EDIT_LIST", cls.copy_edit_list),
            port=_int(env, "PORT", cls.port, 1),
            long_poll_s=_bounded(env, "RESOURCED_LONG_POLL_S", cls.long_poll_s, 0.0, MAX_LONG_POLL_S),
        )


_cached: Settings | None = None


def get_settings() -> Settings:
    """Settings of this process, read from the environment on first use (never at import)."""
    global _cached
    if _cached is None:
        _cached = Settings.from_env()
    return _cached
