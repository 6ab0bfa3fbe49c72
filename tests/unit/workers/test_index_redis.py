"""The archive index may live in its own Redis (RESOURCED_INDEX_REDIS_URL), so an operator can
give it an eviction policy while the job Redis stays noeviction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tasks.exports.spec import S3Location
from tasks.platform.settings import Settings
from workers.archive import ranges

SOURCE = S3Location("archive", "us-east-1")


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    saved = dict(ranges._clients)
    ranges._clients.clear()
    yield
    ranges._clients.clear()
    ranges._clients.update(saved)


def where(settings: Settings) -> tuple[str, int, int]:
    index = ranges.open_index(settings, SOURCE, "rec/cam")
    assert index.client is not None
    kwargs = index.client.connection_pool.connection_kwargs
    return kwargs["host"], kwargs["port"], kwargs["db"]


def test_the_index_uses_its_own_redis_when_one_is_named() -> None:
    settings = Settings.from_env(
        {
            "RESOURCED_REDIS_URL": "redis://jobs.internal:6379/0",
            "RESOURCED_INDEX_REDIS_URL": "redis://index.internal:6380/2",
        }
    )
    assert where(settings) == ("index.internal", 6380, 2)


def test_without_one_the_index_shares_the_job_redis() -> None:
    settings = Settings.from_env({"RESOURCED_REDIS_URL": "redis://jobs.internal:6379/4"})
    assert settings.archive_index_redis_url == "redis://jobs.internal:6379/4"
    assert where(settings) == ("jobs.internal", 6379, 4)
