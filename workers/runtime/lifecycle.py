"""Worker process start and stop: announce this node (queues, slots, encoders) in Redis and
keep the heartbeat going, so the API routes and estimates with what is really running."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tasks.platform import logs
from tasks.platform.celery_app import Queue, TaskName
from tasks.platform.metrics import ClusterCollector
from tasks.platform.registry import HEARTBEAT_EVERY_S, WorkerInfo, announce, withdraw
from workers.media.encoder_probe import working_encoders
from workers.runtime.clients import runtime
from workers.runtime.reaper import reap

log = logging.getLogger(__name__)
_stop = threading.Event()


def _worker_info(consumer: Any) -> WorkerInfo:
    queues = tuple(sorted(q.name for q in consumer.task_consumer.queues))
    concurrency = int(getattr(consumer.controller, "concurrency", 1) or 1)
    return WorkerInfo(
        name=consumer.hostname,
        queues=queues,
        concurrency=concurrency,
        encoders=working_encoders(),
    )


def _heartbeat(info: WorkerInfo, celery: Celery) -> None:
    rt = runtime()
    ttl = rt.settings.heartbeat_ttl_s
    # Reap often enough that a job is taken over soon after its lease expires.
    every = min(HEARTBEAT_EVERY_S, max(0.5, ttl / 3), max(0.5, rt.settings.lease_ttl_s / 3))

    def enqueue(job_id: str, token: str, queue: str) -> None:
        celery.send_task(
            TaskName.EXPORT.value,
            args=[job_id, token],
            queue=queue or Queue.EXPORT_COPY.value,
            task_id=f"export-{job_id}-{token}",  # as the API names them: Flower shows the attempt
        )

    lost_queued_s = rt.settings.export_hard_limit_s * 2 + 60  # past the broker's visibility timeout
    while not _stop.is_set():
        try:
            announce(rt.redis, info, ttl)
            reap(
                rt.jobs,
                rt.redis,
                enqueue,
                lost_queued_s,
                rt.settings.max_export_attempts,
                parked_quiet_s=rt.settings.restore_poll_s * 3 + 60,  # three polls missed
                uploads=rt.store,
            )
        except Exception as exc:  # Redis down: keep beating; the API treats us as gone meanwhile
            log.warning("heartbeat failed", extra={"reason": str(exc)})
        _stop.wait(every)


def serve_metrics(info: WorkerInfo, port: int) -> None:
    """This worker's slots and encoders, and the cluster's export metrics, for Prometheus."""
    registry = CollectorRegistry()
    rt = runtime()
    registry.register(ClusterCollector(rt.redis, rt.jobs, rt.settings.broker_url))
    slots = Gauge(
        "resourced_worker_slots",
        "Concurrent exports this worker runs",
        ["worker", "queues"],
        registry=registry,
    )
    slots.labels(info.name, ",".join(info.queues)).set(info.concurrency)
    encoders = Gauge(
        "resourced_worker_encoder",
        "Encoders that work on this node",
        ["worker", "encoder"],
        registry=registry,
    )
    for name in info.encoders:
        encoders.labels(info.name, name).set(1)
    start_http_server(port, registry=registry)
    log.info("worker metrics served", extra={"port": port})


def connect_worker_signals(celery: Celery) -> None:
    @task_prerun.connect(weak=False)
    def bind_request_id(task: Any = None, **_: Any) -> None:
        """The API's request id, carried in the message headers, on every log line of the task."""
        request = getattr(task, "request", None)
        rid = getattr(request, "request_id", None) or (getattr(request, "headers", None) or {}).get(
            "request_id"
        )
        logs.request_id.set(str(rid or ""))

    @task_postrun.connect(weak=False)
    def unbind_request_id(**_: Any) -> None:
        logs.request_id.set("")

    @worker_ready.connect(weak=False)
    def on_ready(sender: Any = None, **_: Any) -> None:
        info = _worker_info(sender)
        log.info(
            "worker ready",
            extra={"queues": info.queues, "concurrency": info.concurrency, "encoders": info.encoders},
        )
        threading.Thread(target=_heartbeat, args=(info, celery), name="heartbeat", daemon=True).start()
        port = runtime().settings.worker_metrics_port
        if port:
            serve_metrics(info, port)

    @worker_shutdown.connect(weak=False)
    def on_shutdown(sender: Any = None, **_: Any) -> None:
        _stop.set()
        try:
            withdraw(runtime().redis, str(sender.hostname if sender is not None else ""))
        except Exception as exc:
            log.warning("could not withdraw from the registry", extra={"reason": str(exc)})
