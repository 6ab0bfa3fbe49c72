"""Live workers announce themselves in Redis with a heartbeat, so the API can route encodes to
GPU workers only while one is alive and size TimeWait by the slots actually available."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import redis

from tasks.platform import keys

HEARTBEAT_EVERY_S = 10
_CACHE_S = 5.0  # the API reads the registry at most this often per process


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    queues: tuple[str, ...]
    concurrency: int
    encoders: tuple[str, ...]


def announce(client: redis.Redis, info: WorkerInfo, ttl_s: int) -> None:
    """Present for `ttl_s` (settings.heartbeat_ttl_s): a worker that stops beating is gone."""
    payload = asdict(info)
    client.set(keys.worker(info.name), json.dumps(payload), ex=ttl_s)


def withdraw(client: redis.Redis, name: str) -> None:
    client.delete(keys.worker(name))


def live_workers(client: redis.Redis) -> list[WorkerInfo]:
    found: list[WorkerInfo] = []
    for key in client.scan_iter(match=keys.WORKERS + "*", count=100):
        raw = client.get(key)
        if not raw:
            continue
        data = json.loads(raw)
        found.append(
            WorkerInfo(
                name=data["name"],
                queues=tuple(data["queues"]),
                concurrency=int(data["concurrency"]),
                encoders=tuple(data.get("encoders", ())),
            )
        )
    return found


class WorkerView:
    """A short-lived cache of the live workers, for request paths."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._at = 0.0
        self._workers: list[WorkerInfo] = []

    def workers(self) -> list[WorkerInfo]:
        now = time.monotonic()
        if now - self._at > _CACHE_S:
            self._workers = live_workers(self.client)
            self._at = now
        return self._workers

    def slots(self, queue: str) -> int:
        return sum(w.concurrency for w in self.workers() if queue in w.queues)

    def serves(self, queue: str) -> bool:
        return any(queue in w.queues for w in self.workers())
