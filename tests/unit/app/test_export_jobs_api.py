"""Cancel and list exports (contract section 6) through the Flask app over fakeredis and moto's
in-process S3: the cancel is the state machine's CANCEL transition, the listing its registries."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.auth import SignedSessions
from tasks.exports import callbacks
from tasks.exports.leases import AttemptLease
from tasks.exports.spec import ExportResult
from tasks.exports.states import JobState
from tasks.exports.store import ExportJobStore
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tasks.tenancy.ownership import JOB_META, destination_claim
from tests.factories import current_token
from tests.helpers import export_body
from tests.unit.app.conftest import SentTasks, jobs_of

EXPORT, CANCEL, LIST = (
    "/resource/v1/i/export-to-s3dir",
    "/resource/v1/i/export-cancel",
    "/resource/v1/i/exports",
)
TARGET = {"ExportS3Bucket": "exports", "ExportS3Key": "alice/clip.mp4"}


def submit(client: FlaskClient, body: dict[str, Any]) -> str:
    answer = client.post(EXPORT, json=body).get_json()
    assert answer["ErrorCode"] == 1, answer
    return str(answer["JobId"])


def running(app: Flask, client: FlaskClient, body: dict[str, Any]) -> tuple[ExportJobStore, str, int]:
    """The export submitted and claimed by a worker: its store, its JobId and the attempt's token."""
    job_id = submit(client, body)
    jobs = jobs_of(app)
    token = current_token(jobs, job_id)
    assert jobs.claim(job_id, token, "worker-1") == "running"
    return jobs, job_id, token


def issue(settings: Settings, user: str, service: bool = False) -> str:
    return SignedSessions(settings.secret_key).issue(user, 3600, service=service)


def test_a_queued_export_cancelled_by_its_own_request_answers_9_and_frees_its_keys(
    app: Flask, client: FlaskClient, settings: Settings, session: str
) -> None:
    body = export_body(session, "alice", 1000, 2000, **TARGET)
    job_id = submit(client, body)
    assert destination_claim(jobs_of(app).redis, "exports", "alice/clip.mp4") is not None
    cancelled = client.post(CANCEL, json=body)
    assert (cancelled.status_code, cancelled.get_json()) == (
        200,
        {"ErrorCode": 9, "ErrorMessage": "cancelled: the export was cancelled by its owner", "JobId": job_id},
    )
    assert client.post(EXPORT, json=body).get_json()["ErrorCode"] == 9  # every poller learns
    record = jobs_of(app).get(job_id)
    assert record is not None and record.state is JobState.CANCELLED
    assert destination_claim(jobs_of(app).redis, "exports", "alice/clip.mp4") is None  # keys given back
    mallory = issue(settings, "mallory")
    other = client.post(EXPORT, json=export_body(mallory, "mallory", 1000, 2000, **TARGET))
    assert other.get_json()["ErrorCode"] == 1  # the key is free again: nothing was written there


def test_after_the_hold_an_identical_request_starts_afresh(
    s3: Any, sent: SentTasks, redis_client: fakeredis.FakeRedis, settings: Settings, session: str
) -> None:
    settings = settings.replace(cancel_hold_s=1)
    app = create_app(settings, redis_client=redis_client, celery=sent, store=ObjectStore(settings))  # type: ignore[arg-type]
    client = app.test_client()
    body = export_body(session, "alice", 1000, 2000)
    job_id = submit(client, body)
    assert client.post(CANCEL, json=body).get_json()["ErrorCode"] == 9
    time.sleep(1.2)
    again = client.post(EXPORT, json=body).get_json()
    assert (again["ErrorCode"], again["JobId"]) == (1, job_id)
    assert [m["name"] for m in sent.sent].count("resourced.export") == 2  # a fresh attempt was queued
    record = jobs_of(app).get(job_id)
    assert record is not None and record.state is JobState.QUEUED


def test_a_running_export_is_fenced_off_and_its_uploads_aborted(
    app: Flask, client: FlaskClient, s3: Any, session: str
) -> None:
    body = export_body(session, "alice", 1000, 2000, **TARGET)
    jobs, job_id, token = running(app, client, body)
    lease = AttemptLease(jobs, job_id, token, 30)
    upload = s3.create_multipart_upload(Bucket="exports", Key="alice/clip.mp4")["UploadId"]
    lease.record_upload("exports", "alice/clip.mp4", "us-east-1", upload, 3600)
    assert (
        client.post(CANCEL, json={"JobId": job_id, "SessionId": session, "userid": "alice"}).status_code
        == 200
    )
    assert s3.list_multipart_uploads(Bucket="exports").get("Uploads", []) == []  # nothing can complete
    assert not lease.renew() and not lease.holds()  # the attempt learns at its next renewal
    assert jobs.finish(job_id, token, done(job_id)) is False  # and can record no result


def test_a_cancel_withdraws_what_the_attempt_had_completed(
    app: Flask, client: FlaskClient, s3: Any, session: str
) -> None:
    """The poster goes up before the video completes: a cancel landing between the two deletes
    the poster's version, and only what carries the admission's mark."""
    s3.put_bucket_versioning(Bucket="exports", VersioningConfiguration={"Status": "Enabled"})
    body = export_body(session, "alice", 1000, 2000, **TARGET)
    jobs, job_id, _ = running(app, client, body)
    record = jobs.get(job_id)
    assert record is not None
    ours = {JOB_META: f"{record.objects_mark}/segments"}
    s3.put_object(Bucket="exports", Key="alice/clip.jpg", Body=b"poster", Metadata=ours)
    theirs = {JOB_META: f"{job_id}@1.000000/segments"}  # an earlier admission of the same request
    kept = s3.put_object(Bucket="exports", Key="alice/clip.mp4", Body=b"mp4", Metadata=theirs)
    assert client.post(CANCEL, json=body).get_json()["ErrorCode"] == 9
    left = s3.list_object_versions(Bucket="exports")["Versions"]
    assert [(v["Key"], v["VersionId"]) for v in left] == [("alice/clip.mp4", kept["VersionId"])]


def done(job_id: str) -> ExportResult:
    return ExportResult(
        "exports", "us-east-1", "alice", "alice/clip.mp4", "alice/clip.jpg", "e", 2000, 0, 10, "h264"
    )


def test_cancelling_an_ended_export_answers_its_end_and_changes_nothing(
    app: Flask, client: FlaskClient, session: str
) -> None:
    body = export_body(session, "alice", 1000, 2000, **TARGET)
    jobs, job_id, token = running(app, client, body)
    assert jobs.finish(job_id, token, done(job_id))
    answer = client.post(CANCEL, json=body).get_json()
    assert (answer["ErrorCode"], answer["JobId"], answer["LackLength"]) == (5, job_id, 0)
    record = jobs.get(job_id)
    assert record is not None and record.state is JobState.DONE


def test_another_users_job_is_refused_and_untouched(
    app: Flask, client: FlaskClient, settings: Settings, session: str
) -> None:
    job_id = submit(client, export_body(session, "alice", 1000, 2000))
    mallory = issue(settings, "mallory")
    refused = client.post(CANCEL, json={"JobId": job_id, "SessionId": mallory, "userid": "mallory"})
    unknown = client.post(CANCEL, json={"JobId": "0" * 32, "SessionId": mallory, "userid": "mallory"})
    assert refused.status_code == unknown.status_code == 403  # another's job and no job answer alike
    assert refused.get_json()["ErrorCode"] == unknown.get_json()["ErrorCode"] == 3
    record = jobs_of(app).get(job_id)
    assert record is not None and record.state is JobState.QUEUED


@pytest.mark.parametrize(
    ("body", "field"),
    [({"JobId": "../etc"}, "JobId"), ({"JobId": 7}, "JobId"), ({"Duration": -5}, "Duration")],
)
def test_bad_cancels_name_the_field(
    client: FlaskClient, session: str, body: dict[str, Any], field: str
) -> None:
    full = body if "JobId" in body else export_body(session, "alice", 1000, 2000, **body)
    response = client.post(CANCEL, json={"SessionId": session, "userid": "alice", **full})
    assert response.status_code == 400
    assert response.get_json()["ErrorCode"] == 2 and field in response.get_json()["ErrorMessage"]


def test_nothing_to_cancel_is_404(client: FlaskClient, session: str) -> None:
    response = client.post(CANCEL, json=export_body(session, "alice", 5000, 2000))
    assert (response.status_code, response.get_json()["ErrorCode"]) == (404, 4)


def test_a_cancel_is_announced_to_the_callback_url(
    s3: Any, sent: SentTasks, redis_client: fakeredis.FakeRedis, settings: Settings, session: str
) -> None:
    settings = settings.replace(
        callback_secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", callback_allowlist=("127.0.0.1",)
    )
    app = create_app(settings, redis_client=redis_client, celery=sent, store=ObjectStore(settings))  # type: ignore[arg-type]
    client = app.test_client()
    body = export_body(session, "alice", 1000, 2000, CallbackUrl="http://127.0.0.1:9/cb")
    job_id = submit(client, body)
    client.post(CANCEL, json=body)
    client.post(CANCEL, json=body)  # a second cancel announces nothing more
    deliveries = [m for m in sent.sent if m["name"] == callbacks.TASK_NAME]
    assert len(deliveries) == 1
    assert deliveries[0]["args"][0] == job_id and callbacks.is_cancel(deliveries[0]["args"][1])


def test_the_listing_shows_the_callers_exports_newest_first_in_pages(
    app: Flask, client: FlaskClient, settings: Settings, session: str
) -> None:
    mine = [submit(client, export_body(session, "alice", 1000 * n, 2000)) for n in (1, 2, 3)]
    bob = issue(settings, "bob")
    theirs = submit(client, export_body(bob, "bob", 1000, 2000))
    client.post(CANCEL, json=export_body(session, "alice", 1000, 2000))
    headers = {"X-Session-Id": session}
    first = client.get(f"{LIST}?limit=2", headers=headers).get_json()
    assert first["ErrorCode"] == 0 and [e["JobId"] for e in first["Exports"]] == mine[::-1][:2]
    rest = client.get(f"{LIST}?limit=2&cursor={first['Cursor']}", headers=headers).get_json()
    assert [e["JobId"] for e in rest["Exports"]] == [mine[0]] and rest["Cursor"] == ""
    entry = rest["Exports"][0]
    assert (entry["State"], entry["Answer"]["ErrorCode"], entry["StartPos"], entry["Duration"]) == (
        "cancelled",
        9,
        1000,
        2000,
    )
    assert "User" not in entry
    cancelled = client.get(f"{LIST}?state=cancelled", headers=headers).get_json()
    assert [e["JobId"] for e in cancelled["Exports"]] == [mine[0]]
    service = issue(settings, "ops", service=True)
    everyone = client.get(LIST, headers={"X-Session-Id": service}).get_json()
    assert {e["JobId"] for e in everyone["Exports"]} == {*mine, theirs}
    assert {e["User"] for e in everyone["Exports"]} == {"alice", "bob"}


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "limit=1000", "state=ready", "cursor=nonsense"])
def test_bad_listings_are_400(client: FlaskClient, session: str, query: str) -> None:
    response = client.get(f"{LIST}?{query}", headers={"X-Session-Id": session})
    assert response.status_code == 400 and response.get_json()["ErrorCode"] == 2
    assert query.split("=")[0] in response.get_json()["ErrorMessage"]


def test_the_listing_needs_a_session(client: FlaskClient) -> None:
    response = client.get(LIST)
    assert response.status_code == 401 and response.get_json()["ErrorCode"] == 3
