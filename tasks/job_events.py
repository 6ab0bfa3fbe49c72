"""A job's end, signalled over Redis pub/sub, so a held poll answers the moment its job ends.

Why pub/sub on a per-job channel: a publish reaches every poll held for that job (several
clients, several web processes) and costs nothing when nobody listens. A blocking list pop
hands each push to one waiter only, and keyspace notifications need `notify-keyspace-events`
set on the server, which managed Redis often forbids. Pub/sub is fire-and-forget, so a waiter
subscribes first, waits for the server's confirmation, and only then re-reads the record:
an end published before that re-read is seen in the record, one published after it arrives
as a message. Nothing is lost in between.
"""

from __future__ import annotations

import contextlib
import logging
import time
from types import TracebackType

import redis

from tasks import keys

log = logging.getLogger(__name__)


def publish_end(client: redis.Redis, job_id: str, state: str) -> None:
    """Wake every poll held for `job_id`; the record is already written, so a lost signal only
    means a held poll answers at the end of its hold instead of at once."""
    try:
        client.publish(keys.export_events(job_id), state)
    except redis.RedisError as exc:
        log.warning("job end not signalled", extra={"job_id": job_id, "reason": str(exc)})


class EndSignal:
    """Subscribed to one job's end while open: `with EndSignal(r, job) as s: reread; s.wait(5)`."""

    def __init__(self, client: redis.Redis, job_id: str, confirm_s: float = 1.0) -> None:
        self.client, self.channel, self.confirm_s = client, keys.export_events(job_id), confirm_s
        self.pubsub: redis.client.PubSub | None = None

    def __enter__(self) -> EndSignal:
        pubsub = self.client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            if self._next(pubsub, self.confirm_s, "subscribe") is None:
                raise redis.RedisError("no subscribe confirmation")
        except redis.RedisError as exc:  # no signal: the caller answers now rather than hold blind
            pubsub.close()
            log.warning("cannot wait for a job's end", extra={"reason": str(exc)})
            return self
        self.pubsub = pubsub
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.pubsub is not None:
            with contextlib.suppress(redis.RedisError):
                self.pubsub.close()
            self.pubsub = None

    @property
    def listening(self) -> bool:
        return self.pubsub is not None

    def wait(self, timeout_s: float) -> bool:
        """True when the job's end was signalled within `timeout_s`."""
        if self.pubsub is None:
            return False
        try:
            return self._next(self.pubsub, timeout_s, "message") is not None
        except redis.RedisError:
            return False

    @staticmethod
    def _next(pubsub: redis.client.PubSub, timeout_s: float, kind: str) -> dict[str, object] | None:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=left)
            if message is not None and message.get("type") == kind:
                return message
        return None
