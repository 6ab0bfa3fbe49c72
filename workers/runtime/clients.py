"""The clients a worker process shares between its tasks, made on first use after fork."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import redis

from tasks.exports.store import ExportJobStore
from tasks.platform.settings import Settings, get_settings
from tasks.storage import ObjectStore


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    redis: redis.Redis
    store: ObjectStore
    jobs: ExportJobStore


@cache
def runtime() -> Runtime:
    settings = get_settings()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, health_check_interval=30)
    return Runtime(
        settings=settings,
        redis=client,
        store=ObjectStore(settings),
        jobs=ExportJobStore(client, settings.job_ttl_s),
    )
