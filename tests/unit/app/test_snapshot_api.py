"""The snapshot endpoint: an export job of the same store with a snapshot instant, validated,
authenticated and answered like an export."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.auth import SignedSessions
from tasks.exports.spec import ExportResult
from tasks.exports.store import ExportJobStore
from tasks.platform.settings import Settings
from tests.factories import current_token, export_spec
from tests.helpers import storage_info
from tests.unit.app.conftest import SentTasks, jobs_of

URL = "/resource/v1/i/snapshot"
T = 1_700_000_001_540


def body(session: str, **overrides: Any) -> dict[str, Any]:
    base = {
        "storage_info": storage_info("archive", "exports"),
        "LivePath": "live/cam",
        "StartPos": T,
        "SessionId": session,
        "userid": "alice",
    }
    return {**base, **overrides}


def test_a_snapshot_is_an_export_job_with_an_instant(
    client: FlaskClient, session: str, sent: SentTasks, app: Flask
) -> None:
    response = client.post(URL, json=body(session, StartTime="460", Width=80, ExportS3Key="stills/one.jpg"))
    answer = response.get_json()
    assert (response.status_code, answer["ErrorCode"]) == (200, 1)
    jobs: ExportJobStore = app.extensions["resourced"].jobs
    record = jobs.get(answer["JobId"])
    assert record is not None
    spec = record.spec
    assert (spec.snapshot_ms, spec.snapshot_width) == (T + 460, 80)
    assert spec.image_key == "stills/one.jpg" and spec.written_keys == ("stills/one.jpg",)
    assert [t["queue"] for t in sent.sent] == ["export.copy"]
    again = client.post(
        URL, json=body(session, StartPos=str(T + 460), Width="80", ExportS3Key="stills/one.jpg")
    )
    assert again.get_json()["JobId"] == answer["JobId"] and len(sent.sent) == 1  # one job
    token = current_token(jobs, answer["JobId"])
    assert jobs.claim(answer["JobId"], token, "w") == "running"
    jobs.finish(
        answer["JobId"],
        token,
        ExportResult("exports", "us-east-1", "stills", "", "stills/one.jpg", "e", 0, 0, 9, "mjpeg"),
    )
    ready = client.post(
        URL, json=body(session, StartTime=460, Width=80, ExportS3Key="stills/one.jpg")
    ).get_json()
    assert ready["ErrorCode"] == 5 and ready["VideoPath"] == "" and "stills/one.jpg" in ready["ImagePath"]


def test_another_width_is_another_job(client: FlaskClient, session: str) -> None:
    first = client.post(URL, json=body(session)).get_json()
    second = client.post(URL, json=body(session, Width=320)).get_json()
    assert first["JobId"] != second["JobId"]


def test_an_exports_identity_is_unchanged_by_the_snapshot_fields() -> None:
    spec = export_spec()
    assert "snapshot_ms" not in spec.identity()
    assert spec.written_keys == (spec.video_key, spec.image_key)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"StartPos": None}, "StartPos"),
        ({"StartPos": "noon"}, "StartPos"),
        ({"StartTime": "x"}, "StartTime"),
        ({"StartTime": -5, "StartPos": 1}, "StartTime"),
        ({"Width": 4}, "Width"),
        ({"Width": 100000}, "Width"),
        ({"Width": "wide"}, "Width"),
        ({"LivePath": "../x"}, "LivePath"),
        ({"ExportS3Bucket": "Bad_Bucket!"}, "ExportS3Bucket"),
        ({"ExportS3Key": "/abs/x.jpg"}, "ExportS3Key"),
        ({"storage_info": storage_info("archive")}, "ExportS3Bucket"),
        ({"Rendition": "r" * 500}, "Rendition"),
    ],
)
def test_bad_input_names_the_field(
    client: FlaskClient, session: str, sent: SentTasks, overrides: dict[str, Any], field: str
) -> None:
    response = client.post(URL, json=body(session, **overrides))
    answer = response.get_json()
    assert (response.status_code, answer["ErrorCode"]) == (400, 2), answer
    assert field in answer["ErrorMessage"]
    assert sent.sent == []


def test_another_users_session_is_refused(client: FlaskClient, settings: Settings, sent: SentTasks) -> None:
    bob = SignedSessions(settings.secret_key).issue("bob", 3600)
    response = client.post(URL, json=body(bob))
    assert response.get_json()["ErrorCode"] == 3 and sent.sent == []


def test_a_destination_not_allowed_is_refused(client: FlaskClient, session: str, sent: SentTasks) -> None:
    response = client.post(URL, json=body(session, ExportS3Bucket="forbidden"))
    assert (response.status_code, response.get_json()["ErrorCode"]) == (403, 3) and sent.sent == []


def test_the_section6_examples_validate() -> None:
    from app.openapi import build_spec
    from app.schemas.examples import SNAPSHOT_REQUEST, SPANS_REQUEST
    from app.schemas.snapshot import SnapshotRequestSchema
    from app.schemas.spans import SpansRequestSchema

    assert SpansRequestSchema().load(SPANS_REQUEST)["LivePath"] == "live/cam1"
    assert SnapshotRequestSchema().load(SNAPSHOT_REQUEST)["Width"] == 640
    paths = build_spec(Settings())["paths"]
    assert {"/resource/v1/i/recording-spans", "/resource/v1/i/snapshot"} <= set(paths)
    assert "ExportEnded" in paths["/resource/v1/i/export-to-s3dir"]["post"]["callbacks"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"Width": 0}, "Width: must be between 16 and 7680"),  # absent is the source's width, 0 is no width
        ({"Width": "0"}, "Width: must be between 16 and 7680"),
        ({"StartPos": T + 0.5}, "StartPos: must be a whole number of milliseconds"),
        ({"StartTime": 1.5}, "StartTime: must be a whole number of milliseconds"),
        ({"StartTime": "460.25"}, "StartTime: must be a whole number of milliseconds"),
    ],
)
def test_a_zero_width_or_a_fraction_of_a_ms_is_named(
    client: FlaskClient, session: str, sent: SentTasks, overrides: dict[str, Any], field: str
) -> None:
    response = client.post(URL, json=body(session, **overrides))
    answer = response.get_json()
    assert (response.status_code, answer["ErrorCode"]) == (400, 2) and "JobId" not in answer
    assert field in answer["ErrorMessage"] and sent.sent == []


def test_an_absent_or_null_width_is_the_sources(client: FlaskClient, session: str, app: Flask) -> None:
    absent = client.post(URL, json=body(session)).get_json()
    null = client.post(URL, json=body(session, Width=None)).get_json()
    assert absent["JobId"] == null["JobId"]
    record = jobs_of(app).get(absent["JobId"])
    assert record is not None and record.spec.snapshot_width == 0


@pytest.mark.parametrize(
    ("key", "image"),
    [
        ("stills/one.jpg", "stills/one.jpg"),
        ("stills/one.JPG", "stills/one.JPG"),
        ("stills/one.jpeg", "stills/one.jpeg"),
        ("stills/One.JpEg", "stills/One.JpEg"),
        ("stills/one", "stills/one/snapshot.jpg"),
        ("stills/one.png", "stills/one.png/snapshot.jpg"),
    ],
)
def test_a_jpeg_key_is_the_images_name_as_given(
    client: FlaskClient, session: str, app: Flask, key: str, image: str
) -> None:
    """x.JPG was stored as x.jpg and x.jpeg became a folder x.jpeg/snapshot.jpg."""
    answer = client.post(URL, json=body(session, ExportS3Key=key)).get_json()
    record = jobs_of(app).get(answer["JobId"])
    assert record is not None and record.spec.written_keys == (image,)
