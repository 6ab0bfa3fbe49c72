"""The export task: Celery's own retry options with a narrow tuple, and every way an export
ends counted in resourced_exports_total (retried out, timed out, crashed, fenced off)."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

from tasks.exports.leases import LeaseLost
from tasks.exports.outcomes import read_totals
from tasks.exports.spec import ErrorCode, ExportType
from tasks.exports.states import JobState
from tasks.platform import keys
from tasks.platform.celery_app import TaskName, create_celery
from tasks.platform.settings import Settings
from tasks.restore.store import RestoreFile, RestoreJob, RestoreJobStore
from tasks.storage import TransientStorageError
from tests.factories import current_token, export_spec
from tests.unit.workers.conftest import eager_celery, fake_runtime
from workers.errors import ExportError, NoMedia
from workers.jobs import export_attempt
from workers.jobs import restore as restore_steps
from workers.jobs.export_attempt import RETRYABLE, JobOutcome, record_failure
from workers.runtime import celery_tasks
from workers.runtime.clients import Runtime

SPEC = export_spec(export_type=ExportType.H265)


@pytest.fixture
def rt(monkeypatch: pytest.MonkeyPatch) -> Runtime:
    runtime = fake_runtime(monkeypatch, Settings(task_retry_base_s=1.0), celery_tasks)
    runtime.jobs.admit(SPEC, "export.cpu", 10, 10)
    return runtime


@pytest.fixture
def celery(rt: Runtime) -> Celery:
    return eager_celery(rt.settings, celery_tasks.register_tasks)


def failing_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> list[int]:
    calls: list[int] = []

    def process_export(*_: Any) -> JobOutcome:
        calls.append(1)
        raise exc

    monkeypatch.setattr(celery_tasks, "process_export", process_export)
    return calls


def outcome_counts(rt: Runtime) -> dict[tuple[str, str], int]:
    return read_totals(rt.redis).counts


def test_retries_are_celerys_own_with_a_narrow_tuple(celery: Celery) -> None:
    task = celery.tasks[TaskName.EXPORT.value]
    assert task.autoretry_for == RETRYABLE and Exception not in RETRYABLE
    assert (task.retry_backoff, task.retry_jitter, task.max_retries) == (1.0, True, 5)
    assert task.retry_backoff_max == 300 and task.acks_late


def test_a_transient_failure_outlasting_the_retries_fails_the_job_and_is_counted(
    celery: Celery, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = failing_with(monkeypatch, TransientStorageError("s3://archive/x: InternalError"))
    result = celery.tasks[TaskName.EXPORT.value].apply(
        args=[SPEC.job_id, current_token(rt.jobs, SPEC.job_id)]
    )
    assert isinstance(result.result, TransientStorageError)
    assert len(calls) == 6  # the first try and five retries
    record = rt.jobs.get(SPEC.job_id)
    assert record is not None and record.state is JobState.FAILED and record.error_code == 6
    assert "storage kept failing" in record.error and "InternalError" in record.error
    assert outcome_counts(rt) == {("h265", "retried_out"): 1}


@pytest.mark.parametrize(
    ("exc", "outcome", "reason"),
    [
        (SoftTimeLimitExceeded(), "timed_out", "timed out"),
        (ZeroDivisionError("boom"), "crashed", "internal error: ZeroDivisionError: boom"),
    ],
)
def test_timeouts_and_crashes_fail_the_job_and_are_counted(
    celery: Celery,
    rt: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    exc: BaseException,
    outcome: str,
    reason: str,
) -> None:
    calls = failing_with(monkeypatch, exc)
    assert rt.redis.keys(keys.destination_claim("exports", "*")) != []  # claimed at admission
    assert (
        celery.tasks[TaskName.EXPORT.value]
        .apply(args=[SPEC.job_id, current_token(rt.jobs, SPEC.job_id)])
        .result
        == "failed"
    )
    assert rt.redis.keys(keys.destination_claim("exports", "*")) == []
    assert len(calls) == 1  # never retried
    record = rt.jobs.get(SPEC.job_id)
    assert record is not None and record.state is JobState.FAILED and reason in record.error
    assert outcome_counts(rt) == {("h265", outcome): 1}


def test_a_fenced_off_attempt_giving_up_changes_nothing_and_counts_as_lease_lost(rt: Runtime) -> None:
    first = current_token(rt.jobs, SPEC.job_id)
    assert rt.jobs.claim(SPEC.job_id, first, "w1") == "running"
    rt.redis.delete(keys.export_lease(SPEC.job_id))
    assert rt.jobs.requeue(SPEC.job_id, first) == 2
    assert record_failure(rt.jobs, rt.store, SPEC.job_id, first, "timed out", "timed_out") == "fenced"
    record = rt.jobs.get(SPEC.job_id)
    assert record is not None and record.state is JobState.QUEUED and record.attempt == 2
    assert outcome_counts(rt) == {("h265", "lease_lost"): 1}


@pytest.mark.parametrize(
    ("exc", "state", "outcome"),
    [
        (NoMedia("no recording covers the range"), "failed", "error4"),
        (ExportError(ErrorCode.FAILED, "the recording cannot be exported"), "failed", "error6"),
        (LeaseLost("fenced off"), "fenced", "lease_lost"),
    ],
)
def test_refusals_and_fenced_attempts_are_counted_by_class(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, exc: Exception, state: str, outcome: str
) -> None:
    def run_export(*_: Any, **__: Any) -> None:
        raise exc

    monkeypatch.setattr(export_attempt, "run_export", run_export)
    token = current_token(rt.jobs, SPEC.job_id)
    assert (
        export_attempt.process_export(SPEC.job_id, token, rt.jobs, rt.store, rt.settings, "w").state == state
    )
    assert outcome_counts(rt) == {("h265", outcome): 1}
    held = rt.redis.keys(keys.destination_claim("exports", "*"))
    assert len(held) == (
        2 if state == "fenced" else 0
    )  # an export that ended writing nothing gives its keys back


def test_callback_delivery_is_retried_until_its_window_ends_then_marked_failed(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = rt.settings.replace(
        callback_secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        callback_backoff_s=1,
        callback_retry_hours=0.002,  # 7.2 s
    )
    monkeypatch.setattr(celery_tasks, "runtime", lambda: Runtime(settings, rt.redis, rt.store, rt.jobs))
    reads = itertools.count()  # each delivery reads the clock twice (its time, then the window check)
    fake_time = SimpleNamespace(time=lambda: 1_000_000.0 + 2 * (next(reads) // 2))  # 2 s apart
    monkeypatch.setattr(restore_steps, "time", fake_time)  # eager retries skip their countdowns
    app = create_celery(settings)
    app.conf.task_always_eager = True
    celery_tasks.register_restore_tasks(app, settings)
    task = app.tasks[TaskName.CALLBACK_DELIVER.value]
    assert task.autoretry_for == (celery_tasks.DeliveryNotAcknowledged,)
    assert (task.retry_backoff, task.retry_backoff_max, task.retry_jitter) == (1, 3600, True)
    restores = RestoreJobStore(rt.redis)
    job = RestoreJob("t1", "alice", "archive", "us-east-1", "d", "http://127.0.0.1:9/cb", 1, "Bulk", [])
    job.state = "settled"
    restores.create(job)
    result = task.apply(args=[job.ref])
    assert isinstance(result.result, celery_tasks.DeliveryWindowOver)
    final = restores.get(job.ref)
    assert final is not None and final.state == "delivery_failed"
    times = [float(a["at"]) for a in final.attempts]
    assert not any(a["ok"] for a in final.attempts)
    assert len(times) == 5 and times[-1] - times[0] >= 7.2 > times[-2] - times[0]  # 0, 2, 4, 6, 8 s


def test_a_restore_whose_checks_keep_failing_ends_and_calls_back(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_celery(rt.settings)
    app.conf.task_always_eager = True
    celery_tasks.register_restore_tasks(app, rt.settings)
    sent: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **_: sent.append((name, args)))

    def advance(*_: Any) -> bool:
        raise TransientStorageError("s3://archive/cold/a.ts: SlowDown")

    monkeypatch.setattr(celery_tasks, "advance", advance)
    restores = RestoreJobStore(rt.redis)
    job = RestoreJob(
        "t2",
        "alice",
        "archive",
        "us-east-1",
        "cold",
        "http://127.0.0.1:9/cb",
        1,
        "Bulk",
        [RestoreFile("a.ts", "cold/a.ts")],
    )
    restores.create(job)
    result = app.tasks[TaskName.RESTORE_POLL.value].apply(args=[job.ref])
    assert isinstance(result.result, TransientStorageError)
    final = restores.get(job.ref)
    assert final is not None and final.state == "settled" and final.code != 0
    assert final.file_codes() == {"a.ts": 2} and "SlowDown" in final.files[0].reason
    assert sent == [(TaskName.CALLBACK_DELIVER.value, [job.ref])]


def test_a_failed_export_keeps_the_claims_another_export_of_its_owner_still_needs(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice queued two exports to one key; the first finds no media. The key stays claimed for
    the second, so no other user's export can take it meanwhile."""
    second = export_spec(export_type=ExportType.H265, start_ms=SPEC.start_ms + 60_000)
    assert second.video_key == SPEC.video_key and second.job_id != SPEC.job_id
    rt.jobs.admit(second, "export.cpu", 10, 10)

    def run_export(*_: Any, **__: Any) -> None:
        raise NoMedia("no recording covers the range")

    monkeypatch.setattr(export_attempt, "run_export", run_export)
    assert (
        export_attempt.process_export(
            SPEC.job_id, current_token(rt.jobs, SPEC.job_id), rt.jobs, rt.store, rt.settings, "w"
        ).state
        == "failed"
    )
    assert len(rt.redis.keys(keys.destination_claim("exports", "*"))) == 2
    assert (
        export_attempt.process_export(
            second.job_id, current_token(rt.jobs, second.job_id), rt.jobs, rt.store, rt.settings, "w"
        ).state
        == "failed"
    )
    assert rt.redis.keys(keys.destination_claim("exports", "*")) == []  # the last one gives them back
