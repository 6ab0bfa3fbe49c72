"""Fixtures for the worker-side unit tests."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import fakeredis
import pytest
from celery import Celery

from tasks.exports.store import ExportJobStore
from tasks.platform.celery_app import create_celery
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from workers.archive import ranges
from workers.runtime.clients import Runtime


@pytest.fixture(autouse=True)
def archive_index_on_fakeredis(monkeypatch: pytest.MonkeyPatch) -> None:
    """The archive index of Settings()' default Redis URL is a fresh fakeredis per test, so unit
    tests never read or fill a Redis that happens to run on this machine."""
    monkeypatch.setattr(ranges, "_clients", {Settings().redis_url: fakeredis.FakeRedis()})


def fake_runtime(monkeypatch: pytest.MonkeyPatch, settings: Settings, *modules: ModuleType) -> Runtime:
    """The workers' runtime over a fresh fakeredis, what `runtime()` answers in each of `modules`
    (the task modules that look it up) for this test."""
    client = fakeredis.FakeRedis()
    runtime = Runtime(settings, client, ObjectStore(settings), ExportJobStore(client, 3600))
    for module in modules:
        monkeypatch.setattr(module, "runtime", lambda: runtime)
    return runtime


def eager_celery(settings: Settings, register: Callable[[Celery, Settings], None]) -> Celery:
    """A Celery app with `register`'s tasks that runs them inline: retries run at once, countdowns
    are skipped."""
    app = create_celery(settings)
    app.conf.task_always_eager = True
    register(app, settings)
    return app
