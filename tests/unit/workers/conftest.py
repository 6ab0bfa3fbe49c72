"""Fixtures for the worker-side unit tests."""

from __future__ import annotations

import fakeredis
import pytest

from tasks.platform.settings import Settings
from workers.archive import ranges


@pytest.fixture(autouse=True)
def archive_index_on_fakeredis(monkeypatch: pytest.MonkeyPatch) -> None:
    """The archive index of Settings()' default Redis URL is a fresh fakeredis per test, so unit
    tests never read or fill a Redis that happens to run on this machine."""
    monkeypatch.setattr(ranges, "_clients", {Settings().redis_url: fakeredis.FakeRedis()})
