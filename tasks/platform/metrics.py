"""Cluster-wide metrics read from Redis at scrape time: export outcomes, durations, bytes,
TimeWait accuracy, queue depths. Served by the API's /metrics and by each worker's.

Queue depth is asked of the broker itself: the Redis transport keeps each queue as a list named
after it (in the broker's Redis, which need not be the job store's), RabbitMQ answers a passive
queue declare with its ready-message count. Messages a worker holds unacknowledged (running
exports, countdown tasks) are in neither figure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from kombu import Connection
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tasks.exports.outcomes import read_totals
from tasks.exports.store import ExportJobStore
from tasks.platform.celery_app import Queue

log = logging.getLogger(__name__)
BROKER_TIMEOUT_S = 2.0  # a scrape must not hang on a broker that is away


def queue_depths(broker_url: str, fallback: redis.Redis) -> dict[str, int]:
    """Ready messages per queue, from whichever broker is configured; {} when it cannot be asked."""
    if broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return _amqp_depths(broker_url)
    client = redis.Redis.from_url(broker_url, socket_timeout=BROKER_TIMEOUT_S) if broker_url else fallback
    try:
        pipe = client.pipeline(transaction=False)
        for queue in Queue:
            pipe.llen(queue.value)
        return {q.value: int(n) for q, n in zip(Queue, pipe.execute(), strict=True)}
    except redis.RedisError as exc:
        log.warning("queue depth unavailable", extra={"reason": str(exc)})
        return {}
    finally:
        if client is not fallback:
            client.close()


def _amqp_depths(broker_url: str) -> dict[str, int]:
    depths: dict[str, int] = {}
    conn = Connection(broker_url, connect_timeout=BROKER_TIMEOUT_S)
    try:
        with conn:
            channel = conn.channel()
            for queue in Queue:
                try:
                    depths[queue.value] = int(channel.queue_declare(queue.value, passive=True).message_count)
                except conn.channel_errors:  # not declared yet (no worker consumed it): nothing waits
                    depths[queue.value] = 0
                    channel = conn.channel()  # a failed passive declare closes the channel
    except (OSError, *conn.connection_errors) as exc:
        log.warning("queue depth unavailable", extra={"reason": str(exc)})
    return depths


class ClusterCollector(Collector):
    """Reads the shared state in Redis when scraped."""

    def __init__(self, client: redis.Redis, jobs: ExportJobStore, broker_url: str = "") -> None:
        self.client, self.jobs, self.broker_url = client, jobs, broker_url

    def collect(self) -> Iterator[Metric]:
        totals = read_totals(self.client)
        exports = CounterMetricFamily("resourced_exports", "Finished exports", labels=["type", "outcome"])
        for (kind, outcome), count in sorted(totals.counts.items()):
            exports.add_metric([kind, outcome], count)
        yield exports
        yield CounterMetricFamily(
            "resourced_export_seconds_sum", "Export wall time, summed", value=totals.seconds_sum
        )
        yield CounterMetricFamily(
            "resourced_export_seconds_count", "Exports timed", value=totals.seconds_count
        )
        yield CounterMetricFamily("resourced_export_bytes", "Bytes of MP4 exported", value=totals.bytes_total)
        yield CounterMetricFamily(
            "resourced_timewait_error_seconds_sum",
            "Time to ready minus TimeWait estimate",
            value=totals.wait_error_sum,
        )
        yield CounterMetricFamily(
            "resourced_timewait_abs_error_seconds_sum",
            "Absolute TimeWait error, summed",
            value=totals.wait_error_abs_sum,
        )
        yield CounterMetricFamily(
            "resourced_timewait_error_count",
            "Exports whose estimate was checked",
            value=totals.wait_error_count,
        )
        depth = GaugeMetricFamily("resourced_queue_depth", "Messages waiting per queue", labels=["queue"])
        for name, length in queue_depths(self.broker_url, self.client).items():
            depth.add_metric([name], length)
        yield depth
        yield GaugeMetricFamily(
            "resourced_active_exports", "Exports queued or running", value=self.jobs.active_count()
        )
