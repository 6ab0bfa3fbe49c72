"""Cluster-wide metrics read from Redis at scrape time: export outcomes, durations, bytes,
TimeWait accuracy, queue depths. Served by the API's /metrics and by each worker's."""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tasks.celery_app import Queue
from tasks.outcomes import read_totals
from tasks.store import ExportJobStore


class ClusterCollector(Collector):
    """Reads the shared state in Redis when scraped."""

    def __init__(self, client: redis.Redis, jobs: ExportJobStore) -> None:
        self.client, self.jobs = client, jobs

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
        pipe = self.client.pipeline(transaction=False)
        for queue in Queue:
            pipe.llen(queue.value)  # the Redis transport keeps each queue as a list named after it
        for queue, length in zip(Queue, pipe.execute(), strict=True):
            depth.add_metric([queue.value], int(length))
        yield depth
        yield GaugeMetricFamily(
            "resourced_active_exports", "Exports queued or running", value=self.jobs.active_count()
        )
