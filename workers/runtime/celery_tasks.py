"""The Celery tasks: thin shells over plain functions. The one module in workers/ that knows
Celery; everything it calls runs without it.

Every task states late acks, its time limits and a narrow retry tuple with backoff and a cap.
Redelivery is safe because the functions check the job record first and write to
deterministic keys.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from tasks.exports.outcomes import CRASHED, RETRIED_OUT, TIMED_OUT
from tasks.exports.states import ENDED_STATES
from tasks.platform import logs
from tasks.platform.celery_app import Queue, TaskName
from tasks.platform.settings import Settings
from tasks.restore.store import RestoreJobStore
from workers.jobs.export_attempt import RETRYABLE, process_export, record_failure
from workers.jobs.restore import advance, deliver_result, give_up, retry_window_over
from workers.runtime.clients import runtime
from workers.runtime.delivery import delivery_task_options
from workers.runtime.export_callbacks import announce

log = logging.getLogger(__name__)

RETRY_BACKOFF_MAX_S = 300  # a retry waits at most five minutes, so a job never looks dead for long
ENDED = ("ready", "failed")  # task outcomes (JobOutcome.state) after which the job has ended


def announce_end(job_id: str, celery: Celery | None = None) -> None:
    """Hand an ended job to its CallbackUrl hook; an announcement that fails (Redis, broker)
    is logged and never turns the export itself into a failure."""
    try:
        record = runtime().jobs.get(job_id)
    except Exception:
        log.exception("could not announce the export's end", extra={"job_id": job_id})
        return
    if record is not None and record.state in ENDED_STATES:
        announce(record, celery)


class ExportTask(Task):
    """What Celery does once the export's retries are spent: the job ends as ErrorCode 6 with
    the reason, counted as retried out. Every other failure is recorded in the task body."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        job_id, token = args[0], str(args[1])
        if isinstance(exc, RETRYABLE):
            record_failure(
                runtime().jobs, runtime().store, job_id, token, f"storage kept failing: {exc}", RETRIED_OUT
            )
            announce_end(job_id, self.app)


class RestorePollTask(Task):
    """Once a restore check's retries are spent (storage kept failing), the job ends with its
    open files failed and the client is called back, rather than waiting for ever."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if not isinstance(exc, RETRYABLE):
            return
        restores = RestoreJobStore(runtime().redis)
        job = restores.get(args[0])
        if job is None or job.state != "restoring":
            return
        give_up(job, f"storage kept failing: {exc}")
        restores.save(job)
        if job.callback_url:
            self.app.send_task(TaskName.CALLBACK_DELIVER.value, args=[args[0]], queue=Queue.CALLBACK.value)


class DeliveryNotAcknowledged(Exception):
    """The client did not acknowledge a PutRestoreResult delivery: the one thing worth retrying."""


class DeliveryWindowOver(Exception):
    """The client did not acknowledge, and the retry window since the first attempt has passed."""


class CallbackTask(Task):
    """Once the retry window is spent, the restore job says so: delivery_failed."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if not isinstance(exc, DeliveryWindowOver):
            return
        restores = RestoreJobStore(runtime().redis)
        job = restores.get(args[0])
        if job is not None and job.state == "settled":
            job.state = "delivery_failed"
            restores.save(job)


def retry_options(settings: Settings) -> dict[str, Any]:
    """Celery's own retry machinery: a NARROW tuple, exponential backoff from the configured base
    with full jitter (a burst's retries do not arrive together), capped, and a maximum. Celery
    rounds the base to whole seconds, at least 1."""
    return {
        "autoretry_for": RETRYABLE,
        "retry_backoff": settings.task_retry_base_s,
        "retry_backoff_max": RETRY_BACKOFF_MAX_S,
        "retry_jitter": True,
        "max_retries": settings.task_max_retries,
    }


def register_tasks(celery: Celery, settings: Settings) -> None:
    @celery.task(
        name=TaskName.EXPORT.value,
        shared=False,  # bound to this app only: a second app (a test's) registers its own
        base=ExportTask,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        soft_time_limit=settings.export_soft_limit_s,
        time_limit=settings.export_hard_limit_s,
        **retry_options(settings),
    )
    def export(self: Task, job_id: str, token: str) -> str:
        """`token`: the random token of the attempt this message carries (tasks/exports/scripts.py)."""
        rt = runtime()
        bound = logs.job_id.set(job_id)
        try:
            outcome = process_export(
                job_id, str(token), rt.jobs, rt.store, rt.settings, self.request.hostname or ""
            )
            # Look again once S3 may have restored the segments, or once the limits leave room
            # for a parked job to resume.
            if outcome.state in ("restoring", "busy"):
                record = rt.jobs.get(job_id)
                queue = record.queue if record and record.queue else Queue.EXPORT_COPY.value
                celery.send_task(
                    TaskName.EXPORT.value,
                    args=[job_id, token],
                    queue=queue,
                    countdown=rt.settings.restore_poll_s,
                )
            if outcome.state in ENDED:
                announce_end(job_id, celery)
            return outcome.state
        except SoftTimeLimitExceeded:
            reason = f"export timed out after {rt.settings.export_soft_limit_s} s"
            ended = record_failure(rt.jobs, rt.store, job_id, str(token), reason, TIMED_OUT)
            announce_end(job_id, celery)
            return ended
        except RETRYABLE as exc:
            log.warning("export will retry", extra={"reason": str(exc), "retries": self.request.retries})
            raise  # autoretry_for: Celery retries it with backoff, then on_failure records it
        except Exception as exc:
            log.exception("export crashed")
            reason = f"internal error: {type(exc).__name__}: {exc}"
            ended = record_failure(rt.jobs, rt.store, job_id, str(token), reason, CRASHED)
            announce_end(job_id, celery)
            return ended
        finally:
            logs.job_id.reset(bound)


def register_restore_tasks(celery: Celery, settings: Settings) -> None:
    @celery.task(
        name=TaskName.RESTORE_POLL.value,
        shared=False,
        base=RestorePollTask,
        bind=True,
        acks_late=True,
        soft_time_limit=300,
        time_limit=360,
        **retry_options(settings),
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
        except RETRYABLE:
            restores.save(job)
            raise  # autoretry_for
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

    @celery.task(
        name=TaskName.CALLBACK_DELIVER.value,
        base=CallbackTask,
        **delivery_task_options(settings, DeliveryNotAcknowledged),
    )
    def callback_deliver(self: Task, task_id: str) -> str:
        """One signed delivery, recorded on the job; Celery redelivers with backoff until the
        client acknowledges or RESOURCED_CALLBACK_RETRY_HOURS have passed since the first try."""
        rt = runtime()
        restores = RestoreJobStore(rt.redis)
        job = restores.get(task_id)
        if job is None or job.state != "settled":
            return job.state if job else "missing"
        s = rt.settings
        acknowledged = deliver_result(
            job, s.require_callback_secret(), s.callback_allowlist, s.callback_timeout_s
        )
        restores.save(job)
        if not acknowledged:
            error = str(job.attempts[-1].get("error", ""))
            if retry_window_over(job, s.callback_retry_hours):
                raise DeliveryWindowOver(f"{len(job.attempts)} attempts, the last: {error}")
            raise DeliveryNotAcknowledged(error)
        return "delivered"
