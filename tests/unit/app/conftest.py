"""The web app over fakeredis, moto's in-process S3 and a Celery stand-in that records sends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.auth import SignedSessions
from tasks.exports.store import ExportJobStore
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.helpers import moto_buckets


class SentTasks:
    """Records what the API enqueues; `fail` simulates an unreachable broker."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = False

    def send_task(
        self, name: str, args: list[Any], queue: str, task_id: str, headers: dict[str, str] | None = None
    ) -> None:
        if self.fail:
            from kombu.exceptions import OperationalError

            raise OperationalError("broker down")
        self.sent.append({"name": name, "args": args, "queue": queue, "task_id": task_id, "headers": headers})


def jobs_of(app: Flask) -> ExportJobStore:
    """The app's job store, to set up or inspect a job's state behind the API."""
    found: ExportJobStore = app.extensions["resourced"].jobs
    return found


def app_settings(**overrides: Any) -> Settings:
    """The app's settings in these tests; a module that needs more (callbacks, say) overrides a
    field here rather than restating the rest."""
    fields: dict[str, Any] = {
        "secret_key": "unit-test-secret-key-0123456789",
        "allowed_buckets": ("archive", "exports"),
        "max_active_exports": 5,
        "max_active_exports_per_user": 3,
        "imgbed_bucket": "images",
        "long_poll_s": 0.0,  # no worker finishes jobs here; tests/unit/app/test_long_poll.py holds
    }
    return Settings(**{**fields, **overrides})


@pytest.fixture
def settings() -> Settings:
    return app_settings()


@pytest.fixture
def s3(settings: Settings) -> Iterator[Any]:
    with moto_buckets("archive", "exports", "images", "forbidden") as client:
        yield client


@pytest.fixture
def sent() -> SentTasks:
    return SentTasks()


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def app(settings: Settings, s3: Any, sent: SentTasks, redis_client: fakeredis.FakeRedis) -> Flask:
    return create_app(settings, redis_client=redis_client, celery=sent, store=ObjectStore(settings))  # type: ignore[arg-type]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def session(settings: Settings) -> str:
    return SignedSessions(settings.secret_key).issue("alice", 3600)
