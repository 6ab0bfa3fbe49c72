"""Long polling: a poll of an unfinished export is held and answered the moment the job ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis
from flask.testing import FlaskClient

from app.api import long_poll
from scripts import devstack
from tasks.exports.events import JobEvents, publish_change
from tasks.exports.spec import ErrorCode, ExportResult, ExportSpec
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore
from tasks.platform.settings import Settings
from tests.factories import current_token
from tests.helpers import export_body
from tests.unit.app.conftest import SentTasks

URL = "/resource/v1/i/export-to-s3dir"
# Far longer than any test may take: a lost wake-up holds the poll until pytest-timeout fails it.
HOLD_S = 3600.0
WAKE_TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def _no_listener_outlives_its_test() -> Iterator[None]:
    yield
    long_poll.stop_listening()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(long_poll_s=HOLD_S)


def result(spec: ExportSpec) -> ExportResult:
    dest = spec.destination
    return ExportResult(
        dest.bucket, dest.region, dest.prefix, spec.video_key, spec.image_key, "v1", 5000, 0, 1, "h264"
    )


def submitted(client: FlaskClient, session: str, jobs: ExportJobStore) -> ExportSpec:
    """Submit the test's export without waiting for it (Prefer: wait=0); its spec, as queued."""
    client.post(
        URL, json=export_body(session, "alice", 1_700_000_000_000, 5000), headers={"Prefer": "wait=0"}
    )
    return only_job(jobs)


def only_job(jobs: ExportJobStore) -> ExportSpec:
    (job_id,) = jobs.active_ids()
    record = jobs.get(job_id)
    assert record is not None
    return record.spec


def finish_when_held(
    jobs: ExportJobStore, redis_client: fakeredis.FakeRedis, end: str, polls: int = 1
) -> threading.Thread:
    """Ends the job once `polls` polls are subscribed to it (as a worker would, mid-hold)."""

    def run() -> None:
        while long_poll.events_for(jobs).waiting() < polls:  # the polls are being held
            threading.Event().wait(0.01)
        spec = only_job(jobs)
        if end == "ready":
            jobs.finish(spec.job_id, current_token(jobs, spec.job_id), result(spec))
        elif end == "failed":
            jobs.fail(
                spec.job_id, current_token(jobs, spec.job_id), ErrorCode.FAILED, "S3 refused the upload"
            )
        else:  # the worker found the range in Glacier: as export_attempt does it
            jobs.claim(spec.job_id, current_token(jobs, spec.job_id), "w")
            jobs.park(
                spec.job_id, current_token(jobs, spec.job_id), keep_s=3600
            )  # its own publish must wake the poll

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(WAKE_TIMEOUT_S)
@pytest.mark.parametrize(
    ("end", "code", "status"), [("ready", 5, 200), ("failed", 6, 500), ("restoring", 8, 200)]
)
def test_first_post_answers_the_end_when_the_job_ends_during_the_hold(
    client: FlaskClient,
    session: str,
    redis_client: fakeredis.FakeRedis,
    app: Any,
    sent: SentTasks,
    end: str,
    code: int,
    status: int,
) -> None:
    jobs: ExportJobStore = app.extensions["resourced"].jobs
    finisher = finish_when_held(jobs, redis_client, end)
    response = client.post(URL, json=export_body(session, "alice", 1_700_000_000_000, 5000))
    finisher.join(5)
    assert response.status_code == status
    answer = response.get_json()
    assert answer["ErrorCode"] == code
    if code == 5:
        assert answer["LackLength"] == 0 and answer["VideoPath"].startswith("http")
    if end == "failed":  # the failure was answered once: the next identical request starts afresh
        again = client.post(
            URL, json=export_body(session, "alice", 1_700_000_000_000, 5000), headers={"Prefer": "wait=0"}
        )
        assert again.get_json()["ErrorCode"] == 1
        assert len(sent.sent) == 2


@pytest.mark.timeout(WAKE_TIMEOUT_S)
def test_two_held_polls_answer_a_failure_without_restarting_the_job(
    app: Any, redis_client: fakeredis.FakeRedis, session: str, sent: SentTasks
) -> None:
    jobs: ExportJobStore = app.extensions["resourced"].jobs
    body = export_body(session, "alice", 1_700_000_000_000, 5000)
    app.test_client().post(URL, json=body, headers={"Prefer": "wait=0"})
    job_id = only_job(jobs).job_id
    answers: list[int] = []

    def poll() -> None:
        answers.append(app.test_client().post(URL, json=body).get_json()["ErrorCode"])

    polls = [threading.Thread(target=poll, daemon=True) for _ in range(2)]
    finisher = finish_when_held(jobs, redis_client, "failed", polls=2)
    for thread in polls:
        thread.start()
    for thread in (*polls, finisher):
        thread.join(WAKE_TIMEOUT_S / 2)
    assert answers == [6, 6]
    record = jobs.get(job_id)
    assert record is not None and record.state is JobState.FAILED and record.attempt == 1
    assert len(sent.sent) == 1  # nothing was started behind the clients' backs
    again = app.test_client().post(URL, json=body, headers={"Prefer": "wait=0"})
    assert again.get_json()["ErrorCode"] == 1 and len(sent.sent) == 2  # the next request starts afresh


@pytest.mark.timeout(WAKE_TIMEOUT_S)
def test_prefer_wait_zero_answers_at_once(client: FlaskClient, session: str) -> None:
    response = client.post(
        URL, json=export_body(session, "alice", 1_700_000_000_000, 5000), headers={"Prefer": "wait=0"}
    )
    assert response.get_json()["ErrorCode"] == 1  # HOLD_S would otherwise keep it
    assert response.headers["Retry-After"] == str(response.get_json()["TimeWait"])


@pytest.mark.timeout(WAKE_TIMEOUT_S)
def test_an_end_between_reading_and_subscribing_is_not_lost(
    app: Any, client: FlaskClient, session: str
) -> None:
    jobs: ExportJobStore = app.extensions["resourced"].jobs
    spec = submitted(client, session, jobs)
    stale = jobs.get(spec.job_id)
    assert stale is not None and stale.state is JobState.QUEUED
    jobs.finish(
        spec.job_id, current_token(jobs, spec.job_id), result(spec)
    )  # published while nobody listened
    held = long_poll.until_end(jobs, stale, HOLD_S)  # must not sleep out the hold on the stale view
    assert held.state is JobState.DONE


def test_the_hold_runs_out_and_answers_the_job_as_it_stands(
    app: Any, client: FlaskClient, session: str
) -> None:
    jobs: ExportJobStore = app.extensions["resourced"].jobs
    record = jobs.get(submitted(client, session, jobs).job_id)
    assert record is not None
    began = time.monotonic()
    assert long_poll.until_end(jobs, record, 0.3).state is JobState.QUEUED
    assert time.monotonic() - began >= 0.3  # it did hold: a poll answered at once would pass above


def test_a_job_that_ended_without_its_signal_is_answered_ended_when_the_hold_runs_out(
    app: Any, client: FlaskClient, session: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end's publish was lost (Redis blipped): the poll still answers what the record says."""
    jobs: ExportJobStore = app.extensions["resourced"].jobs
    spec = submitted(client, session, jobs)
    record = jobs.get(spec.job_id)
    assert record is not None
    monkeypatch.setattr("tasks.exports.store.job_events.publish_change", lambda *_: None)
    ended = threading.Timer(
        0.2, lambda: jobs.finish(spec.job_id, current_token(jobs, spec.job_id), result(spec))
    )
    ended.start()
    assert long_poll.until_end(jobs, record, 0.6).state is JobState.DONE
    ended.join()


@pytest.mark.timeout(WAKE_TIMEOUT_S)
def test_restoring_jobs_and_ended_jobs_are_not_held(app: Any, client: FlaskClient, session: str) -> None:
    jobs: ExportJobStore = app.extensions["resourced"].jobs
    spec = submitted(client, session, jobs)
    jobs.claim(spec.job_id, current_token(jobs, spec.job_id), "w")
    jobs.park(spec.job_id, current_token(jobs, spec.job_id), keep_s=3600)
    restoring = jobs.get(spec.job_id)
    assert restoring is not None and not long_poll.pending(restoring)
    response = client.post(URL, json=export_body(session, "alice", 1_700_000_000_000, 5000))
    assert response.get_json()["ErrorCode"] == 8  # answered without the hold


@pytest.mark.parametrize(
    ("prefer", "expected"),
    [
        (None, HOLD_S),
        ("wait=0", 0.0),
        ("respond-async, wait=3", 3.0),
        ("wait=99999", HOLD_S),
        ("wait=x", HOLD_S),
    ],
)
def test_hold_seconds(settings: Settings, prefer: str | None, expected: float) -> None:
    assert long_poll.hold_seconds(settings, prefer) == expected


@pytest.mark.timeout(WAKE_TIMEOUT_S)
def test_without_a_subscription_the_poll_is_answered_at_once(
    app: Any, client: FlaskClient, session: str
) -> None:
    jobs: ExportJobStore = app.extensions["resourced"].jobs
    record = jobs.get(submitted(client, session, jobs).job_id)
    assert record is not None
    unreachable = ExportJobStore(redis.Redis(port=devstack.free_port(), socket_connect_timeout=0.2))
    assert long_poll.until_end(unreachable, record, HOLD_S) is record  # not held blind for HOLD_S


@pytest.mark.timeout(WAKE_TIMEOUT_S)
def test_one_subscription_wakes_only_the_polls_of_the_changed_job(redis_client: fakeredis.FakeRedis) -> None:
    events = JobEvents(redis_client)
    try:
        with events.watch("job-a") as a, events.watch("job-b") as b:
            assert a is not None and b is not None and events.waiting() == 2
            publish_change(redis_client, "job-a", "ready")
            assert a.wait(WAKE_TIMEOUT_S / 2)
            assert not b.is_set()
        assert events.waiting() == 0
    finally:
        events.close()
