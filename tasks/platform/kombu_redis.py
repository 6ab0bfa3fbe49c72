"""One patch to kombu's Redis transport, so a Celery worker survives a Redis outage.

When the broker connection drops, Celery's consumer (celery 5.x, kombu 5.x up to 5.7.0 at least)
`collect()`s the connection, which detaches its transport (`transport.client = None`), and then
closes it. If a channel was waiting on its queues (BRPOP: the worker had a free slot) its first
close failed on the dead socket, so the second close runs it again: putting the worker's
unacknowledged messages back needs a new Redis client, whose parameters come from
`transport.client.hostname`, and that raises AttributeError. AttributeError is no connection
error, so it escapes the cleanup and Celery stops with "Unrecoverable error", killing the
exports its pool was running.

The patch makes that lookup fail as what it is, a closed connection (redis.ConnectionError),
which the cleanup already ignores. Nothing is lost by not restoring there: the messages stay
in Redis's unacked set (with persistence) and kombu's restore_visible puts them back after the
visibility timeout, while the job store's reaper requeues the job itself sooner. Remove the
patch once kombu guards the lookup itself; tests/unit/tasks/test_kombu_redis.py says when.
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

_PATCHED = "_resourced_guarded"


def guard_detached_channels() -> None:
    """Make kombu's Redis channels raise redis.ConnectionError instead of AttributeError when
    asked for connection parameters after their connection was collected. Idempotent."""
    original = kombu_redis.Channel._connparams
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if self.connection.client is None:  # collected after a connection loss
            raise redis.ConnectionError("broker connection already closed (collected)")
        return original(self, asynchronous=asynchronous)

    setattr(_connparams, _PATCHED, True)
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]
