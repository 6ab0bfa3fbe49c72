"""The Celery tasks: thin shells over plain functions. The one module in workers/ that knows
Celery; everything it calls runs without it.

Every task states late acks, its time limits and a narrow retry tuple with backoff and a cap.
Redelivery is safe because the functions check the job record first and write to
deterministic keys.
"""

from __future__ import annotations

import logging
import random

import redis
from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from tasks import logs
from tasks.celery_app import TaskName
from tasks.settings import Settings
from tasks.storage import TransientStorageError
from workers.export_job import process_export, record_failure
from workers.runtime import runtime

log = logging.getLogger(__name__)

RETRYABLE = (TransientStorageError, redis.ConnectionError, redis.TimeoutError, ConnectionError)
MAX_RETRIES = 5


def backoff_s(retries: int, base: float = 5.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter, so retries of a burst do not arrive together."""
    return random.uniform(0, min(cap, base * 2**retries))


def register_tasks(celery: Celery, settings: Settings) -> None:
    @celery.task(
        name=TaskName.EXPORT.value,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        max_retries=MAX_RETRIES,
        soft_time_limit=settings.export_soft_limit_s,
        time_limit=settings.export_hard_limit_s,
    )
    def export(self: Task, job_id: str, attempt: int) -> str:
        rt = runtime()
        token = logs.job_id.set(job_id)
        try:
            outcome = process_export(
                job_id, attempt, rt.jobs, rt.store, rt.settings, self.request.hostname or ""
            )
            return outcome.state
        except SoftTimeLimitExceeded:
            record_failure(
                rt.jobs, job_id, attempt, f"export timed out after {rt.settings.export_soft_limit_s} s"
            )
            return "failed"
        except RETRYABLE as exc:
            if self.request.retries >= MAX_RETRIES:
                record_failure(rt.jobs, job_id, attempt, f"storage kept failing: {exc}")
                return "failed"
            log.warning("export will retry", extra={"reason": str(exc), "retries": self.request.retries})
            raise self.retry(exc=exc, countdown=backoff_s(self.request.retries)) from exc
        except Exception as exc:
            log.exception("export crashed")
            record_failure(rt.jobs, job_id, attempt, f"internal error: {type(exc).__name__}: {exc}")
            return "failed"
        finally:
            logs.job_id.reset(token)
