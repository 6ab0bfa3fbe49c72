"""Export outcomes counted in Redis by the workers, so one scrape of the API's /metrics shows
the whole cluster, however many worker nodes come and go."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from tasks.platform import keys

EXPORT_TYPES = {0: "copy", 1: "h264", 2: "h265"}

# The outcome label of resourced_exports_total. Refusals count as error{ErrorCode} ("error4": no
# media in the range, "error6": the media could not be exported); the rest are named here.
READY = "ready"
TIMED_OUT = "timed_out"  # the soft time limit ended it
RETRIED_OUT = "retried_out"  # a transient failure outlasted the task's retries
CRASHED = "crashed"  # an unexpected exception: a bug, recorded as ErrorCode 6
LEASE_LOST = "lease_lost"  # an attempt fenced off by a newer one; it wrote nothing more
ATTEMPTS_EXHAUSTED = "attempts_exhausted"  # the reaper gave up on a job whose workers kept vanishing


@dataclass(frozen=True)
class ExportTotals:
    counts: dict[tuple[str, str], int]  # (type, outcome) -> exports
    seconds_sum: float
    seconds_count: int
    bytes_total: int
    wait_error_sum: float  # actual time to ready minus the TimeWait estimate at admission
    wait_error_abs_sum: float
    wait_error_count: int


def record_outcome(
    client: redis.Redis, export_type: int, outcome: str, wall_s: float, size: int, wait_error_s: float | None
) -> None:
    kind = EXPORT_TYPES.get(export_type, str(export_type))
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(keys.EXPORT_METRICS, f"count:{kind}:{outcome}", 1)
    pipe.hincrbyfloat(keys.EXPORT_METRICS, "seconds_sum", wall_s)
    pipe.hincrby(keys.EXPORT_METRICS, "seconds_count", 1)
    pipe.hincrby(keys.EXPORT_METRICS, "bytes_total", size)
    if wait_error_s is not None:
        pipe.hincrbyfloat(keys.EXPORT_METRICS, "wait_error_sum", wait_error_s)
        pipe.hincrbyfloat(keys.EXPORT_METRICS, "wait_error_abs_sum", abs(wait_error_s))
        pipe.hincrby(keys.EXPORT_METRICS, "wait_error_count", 1)
    pipe.execute()


def read_totals(client: redis.Redis) -> ExportTotals:
    raw = {
        k.decode() if isinstance(k, bytes) else k: v for k, v in client.hgetall(keys.EXPORT_METRICS).items()
    }
    counts: dict[tuple[str, str], int] = {}
    for name, value in raw.items():
        if name.startswith("count:"):
            _, kind, outcome = name.split(":", 2)
            counts[(kind, outcome)] = int(value)
    return ExportTotals(
        counts=counts,
        seconds_sum=float(raw.get("seconds_sum", 0)),
        seconds_count=int(raw.get("seconds_count", 0)),
        bytes_total=int(raw.get("bytes_total", 0)),
        wait_error_sum=float(raw.get("wait_error_sum", 0)),
        wait_error_abs_sum=float(raw.get("wait_error_abs_sum", 0)),
        wait_error_count=int(raw.get("wait_error_count", 0)),
    )
