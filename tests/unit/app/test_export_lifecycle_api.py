"""The export's answers name their job (JobId), say how far it got (Progress), and take an
optional CallbackUrl checked by the address policy before any job starts."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tasks.exports import callbacks
from tasks.exports.spec import ErrorCode, ExportResult
from tasks.platform.settings import Settings
from tests.factories import current_token
from tests.helpers import export_body
from tests.unit.app.conftest import SentTasks, app_settings, jobs_of

URL = "/resource/v1/i/export-to-s3dir"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def settings() -> Settings:
    return app_settings(callback_secret=SECRET, callback_allowlist=("127.0.0.1",))


def post(client: FlaskClient, body: Any) -> tuple[int, dict[str, Any]]:
    response = client.post(URL, json=body)
    return response.status_code, response.get_json()


def test_every_answer_names_the_job_and_its_progress(client: FlaskClient, session: str, app: Flask) -> None:
    body = export_body(session, "alice", 1_700_000_000_000, 5000, ExportS3Key="out/dir")
    status, first = post(client, body)
    jobs = jobs_of(app)
    job_id = jobs.active_ids()[0]
    assert (status, first["JobId"], first["Progress"]) == (200, job_id, 0)
    token = current_token(jobs, job_id)
    assert jobs.claim(job_id, token, "w") == "running"
    assert jobs.progress(job_id, token, 0.426, "remuxing")
    _, running = post(client, body)
    assert (running["ErrorCode"], running["JobId"], running["Progress"]) == (1, job_id, 43)
    result = ExportResult(
        "exports", "us-east-1", "out/dir", "out/dir/clip.mp4", "out/dir/clip.jpg", "e", 1, 0, 1, "h264"
    )
    assert jobs.finish(job_id, token, result)
    _, ready = post(client, body)
    assert (ready["ErrorCode"], ready["JobId"]) == (5, job_id)
    assert "Progress" not in ready  # only while processing


def test_a_failed_answer_names_the_job(client: FlaskClient, session: str, app: Flask) -> None:
    body = export_body(session, "alice", 1_700_000_000_000, 5000)
    post(client, body)
    jobs = jobs_of(app)
    job_id = jobs.active_ids()[0]
    assert jobs.fail(job_id, current_token(jobs, job_id), ErrorCode.NO_MEDIA, "nothing there")
    status, answer = post(client, body)
    assert (status, answer["ErrorCode"], answer["JobId"]) == (404, 4, job_id)


def test_callback_url_is_remembered_and_not_part_of_the_identity(
    client: FlaskClient, session: str, app: Flask, sent: SentTasks
) -> None:
    body = export_body(session, "alice", 1_700_000_000_000, 5000)
    _, plain = post(client, body)
    _, with_url = post(client, {**body, "CallbackUrl": "http://127.0.0.1:9/hook"})
    assert plain["JobId"] == with_url["JobId"] and len(sent.sent) == 1
    redis_client = app.extensions["resourced"].redis
    assert callbacks.url_of(redis_client, plain["JobId"]) == "http://127.0.0.1:9/hook"
    post(client, body)  # a poll without a URL leaves the one named
    assert callbacks.url_of(redis_client, plain["JobId"]) == "http://127.0.0.1:9/hook"
    post(client, {**body, "CallbackUrl": "http://127.0.0.1:9/other"})  # the latest URL wins
    assert callbacks.url_of(redis_client, plain["JobId"]) == "http://127.0.0.1:9/other"


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.8/hook",
        "http://169.254.169.254/latest",
        "ftp://127.0.0.1/x",
        "not a url",
        5,
        "x" * 3000,
    ],
)
def test_a_refused_callback_url_is_a_bad_request_before_any_job(
    client: FlaskClient, session: str, app: Flask, sent: SentTasks, url: object
) -> None:
    body = export_body(session, "alice", 1_700_000_000_000, 5000, CallbackUrl=url)
    status, answer = post(client, body)
    assert (status, answer["ErrorCode"]) == (400, int(ErrorCode.BAD_REQUEST))
    assert "CallbackUrl" in answer["ErrorMessage"]
    assert sent.sent == [] and jobs_of(app).active_ids() == []


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "http://10.0.0.1/", "http://[::ffff:10.0.0.1]/", "http://u:p@127.0.0.1/"],
)
def test_a_refused_callback_url_is_named_with_the_other_bad_fields(
    client: FlaskClient, session: str, sent: SentTasks, url: str
) -> None:
    """The address policy once ran only after the rest was valid: Duration=0 hid CallbackUrl."""
    body = export_body(session, "alice", 1_700_000_000_000, 0, CallbackUrl=url)
    status, answer = post(client, body)
    assert (status, answer["ErrorCode"]) == (400, int(ErrorCode.BAD_REQUEST))
    assert "CallbackUrl:" in answer["ErrorMessage"] and "Duration:" in answer["ErrorMessage"], answer
    assert sent.sent == []


def test_an_ipv4_mapped_callback_address_is_judged_by_its_ipv4(
    client: FlaskClient, session: str, app: Flask
) -> None:
    """127.0.0.1 is allow-listed here, so ::ffff:127.0.0.1 (the same address) is allowed too."""
    body = export_body(session, "alice", 1_700_000_000_000, 5000, CallbackUrl="http://[::ffff:127.0.0.1]:9/h")
    status, answer = post(client, body)
    assert (status, answer["ErrorCode"]) == (200, 1), answer
    assert (
        callbacks.url_of(app.extensions["resourced"].redis, answer["JobId"])
        == "http://[::ffff:127.0.0.1]:9/h"
    )
