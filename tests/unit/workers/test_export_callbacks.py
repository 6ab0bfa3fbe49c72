"""An export's end announced to its CallbackUrl: once per end, the final answer plus JobId,
retried under one webhook-id until the client acknowledges."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from tasks.exports import callbacks
from tasks.exports.spec import ErrorCode
from tasks.platform.settings import Settings
from tasks.platform.webhooks import DeliveryFailed
from tests.factories import current_token, export_spec
from tests.unit.workers.conftest import eager_celery, fake_runtime
from workers.runtime import celery_tasks, export_callbacks
from workers.runtime.clients import Runtime

SPEC = export_spec()
URL = "http://127.0.0.1:9/hook"


@pytest.fixture
def rt(monkeypatch: pytest.MonkeyPatch) -> Runtime:
    settings = Settings(callback_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", callback_backoff_s=1.0)
    runtime = fake_runtime(monkeypatch, settings, celery_tasks, export_callbacks)
    token = runtime.jobs.admit(SPEC, "export.copy", 10, 10).detail
    assert runtime.jobs.claim(SPEC.job_id, token, "w", 60, 10, 10, 1.0) == "running"
    return runtime


@pytest.fixture
def celery(rt: Runtime) -> Celery:
    return eager_celery(rt.settings, export_callbacks.register_export_callback_task)


@pytest.fixture
def delivered(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each delivery attempt; the first `failures` of them are not acknowledged."""
    calls: list[dict[str, Any]] = []

    def deliver(
        url: str, payload: dict[str, Any], secret: str, allow: Any, timeout: float, msg_id: str
    ) -> int:
        calls.append({"url": url, "payload": payload, "id": msg_id})
        if len(calls) <= getattr(deliver, "failures", 0):
            raise DeliveryFailed("the callback answered HTTP 500")
        return 200

    monkeypatch.setattr(export_callbacks, "deliver", deliver)
    return calls


def test_an_end_is_announced_once_with_the_final_answer(
    rt: Runtime, celery: Celery, delivered: list[dict[str, Any]]
) -> None:
    callbacks.remember(rt.redis, SPEC.job_id, URL, 3600)
    rt.jobs.fail(SPEC.job_id, current_token(rt.jobs, SPEC.job_id), ErrorCode.NO_MEDIA, "no media near there")
    celery_tasks.announce_end(SPEC.job_id, celery)
    celery_tasks.announce_end(SPEC.job_id, celery)  # a redelivered task meets the same end
    assert len(delivered) == 1
    assert delivered[0]["url"] == URL
    assert delivered[0]["payload"] == {
        "ErrorCode": 4,
        "ErrorMessage": "no media near there",
        "JobId": SPEC.job_id,
    }


def test_a_job_without_a_callback_url_announces_nothing(
    rt: Runtime, celery: Celery, delivered: list[dict[str, Any]]
) -> None:
    rt.jobs.fail(SPEC.job_id, current_token(rt.jobs, SPEC.job_id), ErrorCode.FAILED, "broken")
    celery_tasks.announce_end(SPEC.job_id, celery)
    assert delivered == []


def test_a_job_still_running_announces_nothing(
    rt: Runtime, celery: Celery, delivered: list[dict[str, Any]]
) -> None:
    callbacks.remember(rt.redis, SPEC.job_id, URL, 3600)
    celery_tasks.announce_end(SPEC.job_id, celery)
    assert delivered == []


def test_retries_keep_one_webhook_id(
    rt: Runtime, celery: Celery, delivered: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_callbacks.deliver, "failures", 2, raising=False)
    callbacks.remember(rt.redis, SPEC.job_id, URL, 3600)
    rt.jobs.fail(SPEC.job_id, current_token(rt.jobs, SPEC.job_id), ErrorCode.FAILED, "broken")
    celery_tasks.announce_end(SPEC.job_id, celery)
    assert len(delivered) == 3
    assert len({d["id"] for d in delivered}) == 1 and delivered[0]["id"].startswith("msg_")


def test_another_end_of_the_same_job_is_another_message() -> None:
    assert callbacks.delivery_id("job", "1-5.0") != callbacks.delivery_id("job", "2-9.0")
    assert callbacks.delivery_id("job", "1-5.0") == callbacks.delivery_id("job", "1-5.0")


def test_a_job_the_reaper_gives_up_is_announced(
    rt: Runtime, celery: Celery, delivered: list[dict[str, Any]]
) -> None:
    from tasks.platform import keys
    from workers.runtime import reaper

    callbacks.remember(rt.redis, SPEC.job_id, URL, 3600)
    rt.redis.delete(keys.export_lease(SPEC.job_id))  # the attempt's worker is gone
    record = rt.jobs.get(SPEC.job_id)
    assert record is not None
    assert reaper._give_up(rt.jobs, rt.redis, rt.store, record, "gave up", {})
    assert [d["payload"]["ErrorCode"] for d in delivered] == [6]


def test_the_retry_window_is_a_deadline_from_the_jobs_end() -> None:
    assert not export_callbacks.window_over(1000.0, 6.0, now=1000.0 + 6 * 3600 - 1)
    assert export_callbacks.window_over(1000.0, 6.0, now=1000.0 + 6 * 3600)
    assert not export_callbacks.window_over(None, 6.0)


def test_a_delivery_past_the_window_is_given_up(
    rt: Runtime, celery: Celery, delivered: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_callbacks.deliver, "failures", 99, raising=False)
    monkeypatch.setattr(export_callbacks, "window_over", lambda *_: len(delivered) >= 2)
    callbacks.remember(rt.redis, SPEC.job_id, URL, 3600)
    rt.jobs.fail(SPEC.job_id, current_token(rt.jobs, SPEC.job_id), ErrorCode.FAILED, "broken")
    celery_tasks.announce_end(SPEC.job_id, celery)
    assert len(delivered) == 2  # retried until the window closed, then no more
