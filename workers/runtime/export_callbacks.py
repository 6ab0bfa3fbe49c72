"""Announcing an export's end to its CallbackUrl: a Celery task on the callback queue that
POSTs the final answer, signed and retried exactly like PutRestoreResult (tasks/platform/webhooks.py).

`export_ended(record)` is THE hook: whatever ends a job (the export task, its failure handlers,
a cancel) calls it with the ended record; it queues one delivery per end when the job has a
CallbackUrl.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Celery, Task

from tasks.exports import callbacks
from tasks.exports.answers import cancelled_answer, ended_answer
from tasks.exports.store import JobRecord
from tasks.platform.settings import Settings
from tasks.platform.webhooks import DeliveryFailed, UrlRefused, deliver
from workers.jobs.restore import window_over
from workers.runtime.clients import runtime
from workers.runtime.delivery import delivery_task_options

log = logging.getLogger(__name__)

EXPORT_CALLBACK_TASK = callbacks.TASK_NAME


class ExportDeliveryNotAcknowledged(Exception):
    """The client did not acknowledge the delivery: the one thing worth retrying."""


def export_ended(record: JobRecord, celery: Celery | None = None, client: redis.Redis | None = None) -> bool:
    """Queue the delivery of this ended job's final answer, once per end; False when the job has
    no CallbackUrl or this end was announced already. `client`: the job store's Redis, where the
    caller has it (a job without a URL then costs one GET and nothing else)."""
    client = client or runtime().redis
    app = celery or _celery
    if app is None:
        raise RuntimeError("export callbacks are not registered on a Celery app")
    if not callbacks.queue_announcement(client, app, record, runtime().settings.job_ttl_s):
        return False
    log.info("export end announced", extra={"job_id": record.job_id})
    return True


def announce(record: JobRecord, celery: Celery | None = None, client: redis.Redis | None = None) -> None:
    """export_ended for callers whose own work is done (a job already recorded as ended): a
    failure to announce is logged, never raised into them."""
    try:
        export_ended(record, celery, client)
    except Exception:
        log.exception("could not announce the export's end", extra={"job_id": record.job_id})


_celery: Celery | None = None


def register_export_callback_task(celery: Celery, settings: Settings) -> None:
    global _celery
    _celery = celery

    @celery.task(name=EXPORT_CALLBACK_TASK, **delivery_task_options(settings, ExportDeliveryNotAcknowledged))
    def export_callback(self: Task, job_id: str, marker: str, url: str) -> str:
        """One signed delivery of the job's final answer; Celery redelivers with backoff until the
        client acknowledges (code 0) or the retry window is spent. The body is rebuilt from the
        record each time (fresh presigned URLs); the webhook-id stays that of this end."""
        rt = runtime()
        record = rt.jobs.get(job_id)
        if callbacks.is_cancel(marker) and (record is None or callbacks.end_marker(record) == marker):
            payload: dict[str, Any] | None = cancelled_answer(job_id)  # the record's hold may be over
            ended_at = float(marker.removeprefix(callbacks.CANCELLED_MARK))
        elif record is None or callbacks.end_marker(record) != marker:
            return "gone"  # expired, or started afresh: its new end is announced on its own
        else:
            payload, ended_at = ended_answer(rt.store, record), record.finished_at or 0.0
        if payload is None:
            return "not ended"
        s = rt.settings
        try:
            deliver(
                url,
                payload,
                s.require_callback_secret(),
                s.callback_allowlist,
                s.callback_timeout_s,
                callbacks.delivery_id(job_id, marker),
            )
        except (DeliveryFailed, UrlRefused) as exc:
            log.warning("export callback not acknowledged", extra={"job_id": job_id, "reason": str(exc)})
            if window_over(ended_at, s.callback_retry_hours):
                log.error("export callback given up", extra={"job_id": job_id, "reason": str(exc)})
                return "given up"
            raise ExportDeliveryNotAcknowledged(str(exc)) from exc
        return "delivered"
