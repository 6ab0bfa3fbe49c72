"""The Celery app, its queues and task names: what the API sends and the workers consume.

Late acks with reject-on-worker-lost mean a task whose worker dies is delivered again; the
broker's visibility timeout is longer than the longest export, so a slow export is never
handed to a second worker while the first still runs it. A broker connection loss of any length
is survived: Celery retries the connection for ever, and kombu's Redis transport is patched so
its cleanup cannot end the worker (tasks/platform/kombu_redis.py).
"""

from __future__ import annotations

from enum import StrEnum

from celery import Celery
from kombu import Exchange
from kombu import Queue as KombuQueue

from tasks.platform.kombu_redis import guard_detached_channels
from tasks.platform.settings import Settings


class Queue(StrEnum):
    EXPORT_COPY = "export.copy"  # stream copy: disk and network bound, never waits for a GPU
    EXPORT_CPU = "export.cpu"  # re-encoding with libx264/libx265
    EXPORT_GPU = "export.gpu"  # re-encoding with NVENC
    RESTORE = "restore"
    CALLBACK = "callback"
    MAINTENANCE = "maintenance"


class TaskName(StrEnum):
    EXPORT = "resourced.export"
    RESTORE_POLL = "resourced.restore.poll"
    CALLBACK_DELIVER = "resourced.callback.deliver"


def create_celery(settings: Settings) -> Celery:
    """A Celery app configured from settings; connects to nothing until used."""
    guard_detached_channels()
    app = Celery("resourced", broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # the job record in Redis is the one truth, not a result backend
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # an export is long: never hoard tasks another worker could run
        task_default_queue=Queue.MAINTENANCE.value,
        # Each queue its own direct exchange and routing key: a bare Queue(name) would inherit the
        # default exchange and key, binding every queue to the same messages.
        task_queues=[
            KombuQueue(q.value, Exchange(q.value, type="direct"), routing_key=q.value) for q in Queue
        ],
        task_default_exchange=Queue.MAINTENANCE.value,
        task_default_routing_key=Queue.MAINTENANCE.value,
        broker_transport_options={"visibility_timeout": settings.export_hard_limit_s * 2},
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,  # after a loss too (the default, stated: a worker never gives up)
        broker_connection_max_retries=None,  # not 100 tries (about 40 min of backoff), for ever
        worker_send_task_events=True,  # Flower shows tasks live
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # Bounded worker memory: a child is replaced after a task that left it above the limit
        # (KiB), or after this many tasks (settings.py says why and the defaults).
        worker_max_memory_per_child=settings.worker_max_memory_per_child_mib * 1024 or None,
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child or None,
    )
    return app
