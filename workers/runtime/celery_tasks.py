"""The Celery tasks: thin shells over plain functions. The one module in workers/ that knows
Celery; everything it calls runs without it.

Every task states late acks, its time limits and a narrow retry tuple with backoff and a cap.
Redelivery is safe because the functions check the job record first and write to
deterministic keys.
"""

from __future__ import annotations

import logging
import random
import time

import redis
from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from tasks import logs
from tasks.celery_app import Queue, TaskName
from tasks.restore_store import RestoreJobStore
from tasks.settings import Settings
from tasks.storage import TransientStorageError
from workers.jobs.export_attempt import process_export, record_failure
from workers.jobs.restore import advance, deliver_result, next_delivery_in
from workers.runtime.clients import runtime

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
            if outcome.state == "restoring":  # look again once S3 may have restored the segments
                record = rt.jobs.get(job_id)
                queue = record.queue if record and record.queue else Queue.EXPORT_COPY.value
                celery.send_task(
                    TaskName.EXPORT.value,
                    args=[job_id, attempt],
                    queue=queue,
                    countdown=rt.settings.restore_poll_s,
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
            raise self.retry(
                exc=exc, countdown=backoff_s(self.request.retries, runtime().settings.task_retry_base_s)
            ) from exc
        except Exception as exc:
            log.exception("export crashed")
            record_failure(rt.jobs, job_id, attempt, f"internal error: {type(exc).__name__}: {exc}")
            return "failed"
        finally:
            logs.job_id.reset(token)


def register_restore_tasks(celery: Celery, settings: Settings) -> None:
    @celery.task(
        name=TaskName.RESTORE_POLL.value,
        bind=True,
        acks_late=True,
        soft_time_limit=300,
        time_limit=360,
        max_retries=MAX_RETRIES,
    )
    def restore_poll(self: Task, task_id: str) -> str:
        """Start or check the job's restores; re-enqueued with a countdown until all settle."""
        rt = runtime()
        restores = RestoreJobStore(rt.redis)
        job = restores.get(task_id)
        if job is None or job.state != "restoring":
            return job.state if job else "missing"
        try:
            settled = advance(job, rt.store)
        except RETRYABLE as exc:
            restores.save(job)
            raise self.retry(
                exc=exc, countdown=backoff_s(self.request.retries, runtime().settings.task_retry_base_s)
            ) from exc
        restores.save(job)
        if not settled:
            celery.send_task(
                TaskName.RESTORE_POLL.value,
                args=[task_id],
                queue=Queue.RESTORE.value,
                countdown=rt.settings.restore_poll_s,
            )
            return "restoring"
        if job.callback_url:
            celery.send_task(TaskName.CALLBACK_DELIVER.value, args=[task_id], queue=Queue.CALLBACK.value)
        return "settled"

    @celery.task(name=TaskName.CALLBACK_DELIVER.value, acks_late=True, soft_time_limit=120, time_limit=150)
    def callback_deliver(task_id: str) -> str:
        """One signed delivery; on failure the next is scheduled with backoff until the window closes."""
        rt = runtime()
        restores = RestoreJobStore(rt.redis)
        job = restores.get(task_id)
        if job is None or job.state != "settled":
            return job.state if job else "missing"
        s = rt.settings
        if deliver_result(job, s.require_callback_secret(), s.callback_allowlist, s.callback_timeout_s):
            restores.save(job)
            return "delivered"
        delay = next_delivery_in(job, s.callback_backoff_s, s.callback_retry_hours, time.time())
        if delay is None:
            job.state = "delivery_failed"
            restores.save(job)
            return "delivery_failed"
        restores.save(job)
        celery.send_task(
            TaskName.CALLBACK_DELIVER.value, args=[task_id], queue=Queue.CALLBACK.value, countdown=delay
        )
        return "retrying"
