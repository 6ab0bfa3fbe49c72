"""Prometheus metrics at /metrics: requests by endpoint and code (per web process, summed by
prometheus-client's multiprocess mode under gunicorn), and cluster-wide export outcomes,
durations, bytes, queue depths and TimeWait accuracy read from Redis at scrape time."""

from __future__ import annotations

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from tasks.exports.store import ExportJobStore
from tasks.platform.metrics import ClusterCollector

REQUESTS = Counter("resourced_http_requests_total", "HTTP requests", ["endpoint", "status", "code"])
LATENCY = Histogram(
    "resourced_http_request_seconds",
    "HTTP request latency",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def exposition(client: redis.Redis, jobs: ExportJobStore, multiprocess: bool, broker_url: str = "") -> bytes:
    """`broker_url`: where queue depths are read; empty when the broker is the job store's Redis."""
    registry = CollectorRegistry()
    if multiprocess:  # gunicorn's processes each count their own requests: sum them
        MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(LATENCY)
    registry.register(ClusterCollector(client, jobs, broker_url))
    return bytes(generate_latest(registry))
