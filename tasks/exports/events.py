"""A job's end, signalled over Redis pub/sub, so a held poll answers the moment its job ends.

Why pub/sub on per-job channels: a publish reaches every poll held for that job in every web
process and costs nothing when nobody listens. A blocking list pop hands each push to one
waiter only, and keyspace notifications need `notify-keyspace-events` set on the server,
which managed Redis often forbids.

Each web process keeps ONE pattern subscription (`JobEvents`), and a held poll registers an
event for its job there, so a thousand held polls cost one Redis connection, not a thousand.
Pub/sub is fire-and-forget, so a waiter registers first and only then re-reads the record
(the subscription is confirmed before anyone waits): an end published before the re-read is
in the record, one after it sets the event. When the subscription drops and comes back,
every waiter is woken to re-read, since what was published meanwhile is lost.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from tasks.platform import keys

log = logging.getLogger(__name__)

RECONNECT_S = 0.5  # between attempts to subscribe again after Redis went away
POLL_S = 1.0  # the listener's read timeout: below the client's socket timeout, so idle is not an error


def publish_change(client: redis.Redis, job_id: str, what: str) -> None:
    """Wake every poll held for `job_id` (it ended, or it waits for a Glacier restore: either
    way its client must hear now). The record is already written, so a lost signal only means
    a held poll answers at the end of its hold instead of at once."""
    try:
        client.publish(keys.export_events(job_id), what)
    except redis.RedisError as exc:
        log.warning("job change not signalled", extra={"job_id": job_id, "reason": str(exc)})


class JobEvents:
    """One process's subscription to every job's changes, shared by its held polls."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._waiters: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = threading.Event()

    def close(self) -> None:
        """Stop listening (within a second); held polls are woken to answer as things stand."""
        self._closed.set()
        self._wake(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(POLL_S + RECONNECT_S + 1)

    def waiting(self, job_id: str | None = None) -> int:
        """Polls held now, for one job or in all."""
        with self._lock:
            if job_id is not None:
                return len(self._waiters.get(job_id, ()))
            return sum(len(events) for events in self._waiters.values())

    @contextmanager
    def watch(self, job_id: str, confirm_s: float = 1.0) -> Iterator[threading.Event | None]:
        """An event set when `job_id` changes, or None when no subscription could be made
        (the caller then answers at once rather than hold blind)."""
        if self._closed.is_set() or not self._start(confirm_s):
            yield None
            return
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._waiters.get(job_id, set())
                events.discard(event)
                if not events:
                    self._waiters.pop(job_id, None)

    def _start(self, confirm_s: float) -> bool:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid, self._subscribed = os.getpid(), threading.Event()  # a forked child starts afresh
                self._thread = threading.Thread(target=self._listen, name="job-events", daemon=True)
                self._thread.start()
        return self._subscribed.wait(confirm_s)

    def _wake(self, job_id: str | None) -> None:
        with self._lock:
            if job_id is None:
                events = [e for group in self._waiters.values() for e in group]
            else:
                events = list(self._waiters.get(job_id, ()))
        for event in events:
            event.set()

    def _listen(self) -> None:
        prefix = keys.export_events("")
        while not self._closed.is_set():
            pubsub = self.client.pubsub()
            try:
                pubsub.psubscribe(prefix + "*")
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=POLL_S)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        self._wake(None)  # polls held across a lost subscription missed what came: re-read
                        self._subscribed.set()  # only now may new polls count on being woken
                    elif message["type"] == "pmessage":
                        channel = message["channel"]
                        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                        self._wake(channel.removeprefix(prefix))
            except (redis.RedisError, OSError) as exc:
                self._subscribed.clear()
                self._wake(None)
                log.warning("job events subscription lost", extra={"reason": str(exc)})
                self._closed.wait(RECONNECT_S)
            finally:
                try:
                    pubsub.close()
                except (redis.RedisError, OSError):
                    log.debug("closing a broken subscription failed")
