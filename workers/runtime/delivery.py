"""The Celery options of a signed delivery task (PutRestoreResult, an export's CallbackUrl): one
set, so both are retried alike, until the retry window's deadline (workers/jobs/restore.py)."""

from __future__ import annotations

from typing import Any

from tasks.platform.settings import Settings
from workers.jobs.restore import DELIVERY_BACKOFF_MAX_S


def delivery_task_options(settings: Settings, not_acknowledged: type[Exception]) -> dict[str, Any]:
    """Late acks, time limits, and a retry with jittered backoff on `not_acknowledged` alone,
    with no count: the task stops itself at the window's deadline, whatever the jitter draws."""
    return {
        "shared": False,
        "bind": True,
        "acks_late": True,
        "soft_time_limit": 120,
        "time_limit": 150,
        "autoretry_for": (not_acknowledged,),
        "retry_backoff": settings.callback_backoff_s,
        "retry_backoff_max": DELIVERY_BACKOFF_MAX_S,
        "retry_jitter": True,
        "max_retries": None,
    }
