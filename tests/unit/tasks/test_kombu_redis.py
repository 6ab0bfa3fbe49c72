"""kombu's Redis transport in the state Celery's consumer leaves it in after a connection loss
(collected: `transport.client` is None) while a channel still holds an unacknowledged message:
closing that channel must fail as a connection error, which Celery ignores, never with the
AttributeError that stopped workers ("Unrecoverable error", see tasks/platform/kombu_redis.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from scripts import devstack
from tasks.platform.kombu_redis import guard_detached_channels

QUEUE = Queue("export.copy", Exchange("export.copy", type="direct"), routing_key="export.copy")


@pytest.fixture
def holding() -> Iterator[Connection]:
    """A connection whose default channel holds one delivered, unacknowledged message."""
    with devstack.redis_server() as url:
        with Connection(url) as producer:
            producer.Producer().publish(
                {"n": 1}, exchange=QUEUE.exchange, routing_key="export.copy", declare=[QUEUE]
            )
        conn = Connection(url)
        assert conn.default_channel.basic_get(QUEUE.name, no_ack=False) is not None
        yield conn


def test_a_collected_channel_closes_with_a_connection_error_not_an_attribute_error(
    holding: Connection,
) -> None:
    guard_detached_channels()
    ignored = holding.connection_errors + holding.channel_errors  # what Celery's cleanup ignores
    holding.transport.client = None  # as Connection.collect() leaves it (_do_close_transport)
    with pytest.raises(ignored):
        holding.default_channel.close()  # unpatched: AttributeError: ... no attribute 'hostname'


def test_the_guard_is_applied_once() -> None:
    guard_detached_channels()
    first = kombu_redis.Channel._connparams
    guard_detached_channels()
    assert kombu_redis.Channel._connparams is first
