"""Which queue an export goes to. Stream copies never wait for a GPU; encodes go to the GPU
queue while a GPU worker is alive, else to the CPU queue."""

from __future__ import annotations

from tasks.exports.spec import ExportSpec
from tasks.platform.celery_app import Queue
from tasks.platform.registry import WorkerView


def export_queue(spec: ExportSpec, workers: WorkerView) -> Queue:
    if not spec.needs_encoding:
        return Queue.EXPORT_COPY
    if workers.serves(Queue.EXPORT_GPU.value):
        return Queue.EXPORT_GPU
    return Queue.EXPORT_CPU
