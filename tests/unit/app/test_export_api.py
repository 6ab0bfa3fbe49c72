"""The export endpoint's contract: validation, auth, idempotent polling, limits, answers."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.auth import SignedSessions
from tasks.exports.spec import ErrorCode, ExportResult
from tasks.exports.store import ExportJobStore
from tasks.platform import keys
from tasks.platform.settings import Settings
from tests.factories import current_token
from tests.helpers import export_body, storage_info
from tests.unit.app.conftest import SentTasks

URL = "/resource/v1/i/export-to-s3dir"


def post(client: FlaskClient, body: Any) -> tuple[int, dict[str, Any]]:
    response = client.post(URL, json=body)
    return response.status_code, response.get_json()


def test_accepts_and_polls_one_job(client: FlaskClient, session: str, sent: SentTasks, app: Any) -> None:
    body = export_body(session, "alice", 1_700_000_000_000, 5000)
    status, answer = post(client, body)
    assert status == 200
    assert answer["ErrorCode"] == 1 and answer["TimeWait"] >= 1
    status, again = post(client, body)
    assert (status, again["ErrorCode"]) == (200, 1)
    assert len(sent.sent) == 1
    task = sent.sent[0]
    assert task["name"] == "resourced.export" and task["queue"] == "export.copy"
    # ids only (the job and its attempt's random token): no session, no credentials
    assert len(task["args"]) == 2 and task["args"][1] == current_token(
        app.extensions["resourced"].jobs, task["args"][0]
    )
    assert len(task["headers"]["request_id"]) >= 8  # the request id follows the job into the worker


def test_numeric_strings_and_absent_start_time(client: FlaskClient, session: str, sent: SentTasks) -> None:
    body = export_body(session, "alice", "1700000000000", "5000", StartTime="", export_type="0")
    assert post(client, body)[0] == 200
    body2 = export_body(session, "alice", 1_700_000_000_000, 5000.0)
    del body2["StartTime"]
    assert post(client, body2)[0] == 200
    assert len(sent.sent) == 1  # the same job both times


def test_a_live_path_with_a_trailing_slash_is_the_same_job(
    client: FlaskClient, session: str, sent: SentTasks
) -> None:
    answers = [
        post(client, export_body(session, "alice", 1_700_000_000_000, 5000, LivePath=path))
        for path in ("live/cam1", "live/cam1/")
    ]
    assert [status for status, _ in answers] == [200, 200]
    assert len(sent.sent) == 1


def test_each_rendition_is_its_own_job_and_folder(client: FlaskClient, session: str, sent: SentTasks) -> None:
    bodies = [
        export_body(session, "alice", 1_700_000_000_000, 5000, FileName="", **extra)
        for extra in ({}, {"Rendition": ""}, {"Rendition": "720p"}, {"Rendition": "360p"})
    ]
    answers = [post(client, body) for body in bodies]
    assert [status for status, _ in answers] == [200] * 4
    assert len(sent.sent) == 3, "an empty Rendition is the request without one"


@pytest.mark.parametrize(
    ("overrides", "bad_field"),
    [
        ({"Rendition": "a\nb"}, "Rendition"),
        ({"Rendition": "x" * 201}, "Rendition"),
        ({"Duration": -5}, "Duration"),
        ({"Duration": 0}, "Duration"),
        ({"Duration": 10**12}, "Duration"),
        ({"Duration": "soon"}, "Duration"),
        ({"Duration": True}, "Duration"),
        ({"StartPos": None}, "StartPos"),
        ({"StartPos": "NaN"}, "StartPos"),
        ({"export_type": 7}, "export_type"),
        ({"export_type": "h264"}, "export_type"),
        ({"ServiceCaller": "evil"}, "ServiceCaller"),
        ({"LivePath": "../../etc"}, "LivePath"),
        ({"LivePath": "/abs/path"}, "LivePath"),
        ({"LivePath": "cam\x00x"}, "LivePath"),
        ({"FileName": "../x.mp4"}, "FileName"),
        ({"FileName": "a/b.mp4"}, "FileName"),
        ({"ExportS3Key": "a/../../b"}, "ExportS3Key"),
        ({"ExportS3Bucket": "Not_A_Bucket"}, "ExportS3Bucket"),
        ({"storage_info": "%%%not-base64"}, "storage_info"),
        ({"storage_info": base64.b64encode(b"{not json").decode()}, "storage_info"),
        (
            {
                "storage_info": base64.b64encode(
                    b'[{"storage_purpose":"mp4","storage_name":"exports"}]'
                ).decode()
            },
            "storage_info",
        ),
        (
            {
                "storage_info": base64.b64encode(
                    b'[{"storage_purpose":"ts","storage_name":"archive","storage_root_folder":"../x"}]'
                ).decode()
            },
            "storage_info",
        ),
        ({"StartTime": -(10**15)}, "StartTime"),
    ],
)
def test_bad_fields_are_named(
    client: FlaskClient, session: str, overrides: dict[str, Any], bad_field: str
) -> None:
    status, answer = post(client, export_body(session, "alice", 1_700_000_000_000, 5000, **overrides))
    assert status == 400
    assert answer["ErrorCode"] == 2
    assert bad_field in answer["ErrorMessage"]


def test_every_bad_field_is_named_at_once(client: FlaskClient, session: str) -> None:
    body = export_body(session, "alice", -1, -1, export_type=9, LivePath="..")
    status, answer = post(client, body)
    assert status == 400
    for name in ("StartPos", "Duration", "export_type", "LivePath"):
        assert name in answer["ErrorMessage"]


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b'"text"', b"", b"\xff\xfe"])
def test_malformed_bodies(client: FlaskClient, raw: bytes) -> None:
    response = client.post(URL, data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["ErrorCode"] == 2


def test_auth(client: FlaskClient, session: str, settings: Settings) -> None:
    body = export_body(session, "alice", 1_700_000_000_000, 5000)
    status, answer = post(client, {**body, "SessionId": ""})
    assert (status, answer["ErrorCode"]) == (401, 3)
    assert post(client, {**body, "SessionId": session + "x"})[1]["ErrorCode"] == 3
    other = SignedSessions("another-secret-key-0123456789").issue("alice", 3600)
    assert post(client, {**body, "SessionId": other})[0] == 401
    expired = SignedSessions(settings.secret_key).issue("alice", -1)
    assert post(client, {**body, "SessionId": expired})[0] == 401
    status, answer = post(client, {**body, "userid": "mallory"})
    assert (status, answer["ErrorCode"]) == (403, 3)


def test_buckets_outside_the_allowlist(client: FlaskClient, session: str) -> None:
    body = export_body(
        session, "alice", 1_700_000_000_000, 5000, storage_info=storage_info("forbidden", "exports")
    )
    status, answer = post(client, body)
    assert (status, answer["ErrorCode"]) == (403, 3)
    body = export_body(session, "alice", 1_700_000_000_000, 5000, ExportS3Bucket="forbidden")
    assert post(client, body)[1]["ErrorCode"] == 3


def test_busy_answers_429_with_retry_after(client: FlaskClient, session: str) -> None:
    for i in range(3):
        assert post(client, export_body(session, "alice", 1_700_000_000_000 + i, 5000))[0] == 200
    response = client.post(URL, json=export_body(session, "alice", 1_700_000_000_100, 5000))
    assert response.status_code == 429
    assert response.get_json()["ErrorCode"] == 7
    assert int(response.headers["Retry-After"]) == response.get_json()["TimeWait"] >= 1
    # polls of accepted jobs are never refused
    assert post(client, export_body(session, "alice", 1_700_000_000_000, 5000))[0] == 200


def test_ready_answer_has_urls_and_version(client: FlaskClient, session: str, app: Any, s3: Any) -> None:
    body = export_body(session, "alice", 1_700_000_000_000, 5000, ExportS3Key="out/dir")
    post(client, body)
    jobs: ExportJobStore = app.extensions["resourced"].jobs
    job_id = jobs.active_ids()[0]
    record = jobs.get(job_id)
    assert record is not None
    assert record.spec.video_key == "out/dir/clip.mp4"
    jobs.claim(job_id, current_token(jobs, job_id), "w")
    keys = ("out/dir", "out/dir/clip.mp4", "out/dir/clip.jpg")
    result = ExportResult("exports", "us-east-1", *keys, "etag1", 4960, 40, 100, "h264")
    jobs.finish(job_id, current_token(jobs, job_id), result)
    status, answer = post(client, body)
    assert status == 200
    assert answer["ErrorCode"] == 5
    assert answer["S3Dir"] == "out/dir" and answer["Version"] == "etag1" and answer["LackLength"] == 40
    assert answer["VideoPath"].startswith("https://") and "out/dir/clip.mp4" in answer["VideoPath"]
    assert "X-Amz-Signature" in answer["VideoPath"] and "clip.jpg" in answer["ImagePath"]


def test_failure_is_answered_then_retried(
    client: FlaskClient, session: str, app: Any, sent: SentTasks
) -> None:
    body = export_body(session, "alice", 1_700_000_000_000, 5000)
    post(client, body)
    jobs: ExportJobStore = app.extensions["resourced"].jobs
    job_id = jobs.active_ids()[0]
    first = current_token(jobs, job_id)
    jobs.fail(job_id, first, ErrorCode.NO_MEDIA, "no recording covers the range")
    status, answer = post(client, body)
    assert (status, answer["ErrorCode"]) == (404, 4)
    assert "no recording" in answer["ErrorMessage"]
    status, answer = post(client, body)
    assert (status, answer["ErrorCode"]) == (200, 1)
    assert [t["args"][1] for t in sent.sent] == [first, current_token(jobs, job_id)]
    assert first != current_token(jobs, job_id)


def test_the_destination_stays_claimed_while_a_restore_may_take(
    client: FlaskClient, session: str, app: Any, settings: Settings
) -> None:
    post(client, export_body(session, "alice", 1_700_000_000_000, 5000))
    jobs: ExportJobStore = app.extensions["resourced"].jobs
    record = jobs.get(jobs.active_ids()[0])
    assert record is not None
    dest = record.spec.destination
    assert settings.restore_wait_s > settings.job_ttl_s
    for key in (record.spec.video_key, record.spec.image_key):
        assert jobs.redis.ttl(keys.destination_claim(dest.bucket, key)) > settings.job_ttl_s


def test_broker_down_is_a_clear_error_and_not_a_stuck_job(
    client: FlaskClient, session: str, sent: SentTasks
) -> None:
    sent.fail = True
    response = client.post(URL, json=export_body(session, "alice", 1_700_000_000_000, 5000))
    assert response.status_code == 503
    assert response.get_json()["ErrorCode"] == 6
    sent.fail = False
    post(client, export_body(session, "alice", 1_700_000_000_000, 5000))  # the failure, answered once
    status, answer = post(client, export_body(session, "alice", 1_700_000_000_000, 5000))
    assert (status, answer["ErrorCode"]) == (200, 1)
    assert len(sent.sent) == 1


def test_unknown_routes_and_methods_answer_json(client: FlaskClient) -> None:
    response = client.get(URL)
    assert response.status_code == 405 and response.get_json()["ErrorCode"] == 2
    response = client.get("/nope")
    assert response.status_code == 404 and "ErrorCode" in response.get_json()
    oversized = client.post(
        URL, data=json.dumps({"x": "a" * (30 * 1024 * 1024)}), content_type="application/json"
    )
    assert oversized.status_code == 413


def test_a_chunked_body_over_the_limit_is_413_too(client: FlaskClient) -> None:
    """No Content-Length to refuse up front: the limit is met while reading, and says so."""
    body = json.dumps({"x": "a" * (2 * 1024 * 1024)}).encode()
    oversized = client.post(
        URL,
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn says of a chunked body
    )
    assert (oversized.status_code, oversized.get_json()["ErrorCode"]) == (413, 2)
