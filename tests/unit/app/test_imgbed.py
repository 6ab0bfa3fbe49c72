"""The image bed: round trip, ownership, hostile input, concurrent uploads of one name."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from app import create_app
from app.auth import SignedSessions
from tasks.exports.spec import S3Location
from tasks.exports.store import ExportJobStore
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.factories import export_spec
from tests.unit.app.conftest import SentTasks

UPLOAD, DELETE = "/api/imgbed/v1/upload", "/api/imgbed/v1/delete"


def png(color: tuple[int, int, int] = (200, 10, 10), size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A valid PNG header that claims 3.6 gigapixels, in a few dozen bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def session_for(settings: Settings, user: str, service: bool = False) -> dict[str, str]:
    return {"X-Session-Id": SignedSessions(settings.secret_key).issue(user, 3600, service=service)}


def upload(
    client: FlaskClient,
    headers: dict[str, str],
    data: bytes,
    path: str = "avatars/alice",
    filename: str | None = "me.png",
    content_type: str = "image/png",
    upload_name: str | None = None,
) -> tuple[int, dict[str, Any]]:
    part_name = upload_name if upload_name is not None else filename or "upload.bin"
    form: dict[str, Any] = {"file": (io.BytesIO(data), part_name, content_type), "path": path}
    if filename is not None:
        form["filename"] = filename
    response = client.post(UPLOAD, data=form, headers=headers, content_type="multipart/form-data")
    return response.status_code, response.get_json()


def test_round_trip_with_cache_headers(client: FlaskClient, settings: Settings) -> None:
    alice = session_for(settings, "alice")
    data = png()
    status, answer = upload(client, alice, data)
    assert (status, answer["errCode"], answer["path"], answer["filename"]) == (
        200,
        0,
        "avatars/alice",
        "me.png",
    )
    fetched = client.get(answer["url"])
    assert fetched.status_code == 200
    assert fetched.data == data  # stored as uploaded, never recompressed
    assert fetched.headers["Content-Type"] == "image/png"
    assert "max-age" in fetched.headers["Cache-Control"]
    etag = fetched.headers["ETag"]
    assert client.get(answer["url"], headers={"If-None-Match": etag}).status_code == 304
    assert client.post(
        DELETE, json={"path": "avatars/alice", "filename": "me.png"}, headers=alice
    ).get_json() == {
        "errCode": 0,
        "message": "deleted",
    }
    assert client.get(answer["url"]).get_json()["errCode"] == 1
    again = client.post(DELETE, json={"path": "avatars/alice", "filename": "me.png"}, headers=alice)
    assert (again.status_code, again.get_json()["errCode"]) == (404, 1)


def test_declared_type_is_ignored_and_name_defaults_to_the_uploads_own(
    client: FlaskClient, settings: Settings
) -> None:
    alice = session_for(settings, "alice")
    status, answer = upload(client, alice, png(), filename=None, content_type="text/plain")
    assert (status, answer["filename"]) == (200, "upload.bin")
    assert client.get(answer["url"]).headers["Content-Type"] == "image/png"
    gone = client.post(DELETE, json={"path": "avatars/alice", "filename": "upload.bin"}, headers=alice)
    assert gone.get_json()["errCode"] == 0  # the name the docs promise is the name stored


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("photos/2024/holiday.png", "holiday.png"),
        ("../../etc/x.png", "x.png"),
        ("te\u202est.png", "test.png"),
        ("x" * 300 + ".png", "x" * 251 + ".png"),
    ],
)
def test_the_default_name_is_sanitised(
    client: FlaskClient, settings: Settings, sent: str, stored: str
) -> None:
    status, answer = upload(client, session_for(settings, "alice"), png(), filename=None, upload_name=sent)
    assert (status, answer["filename"]) == (200, stored)


def test_a_nameless_upload_is_named_by_its_content(client: FlaskClient, settings: Settings) -> None:
    status, answer = upload(client, session_for(settings, "alice"), png(), filename=None, upload_name="..")
    assert status == 200
    assert answer["filename"].endswith(".png") and len(answer["filename"]) == 24


@pytest.mark.parametrize("bucket", ["", "no-such-bucket"])
def test_a_misconfigured_image_bed_is_a_configuration_error_not_busy(
    settings: Settings, s3: Any, bucket: str
) -> None:
    """Not 500, not 4/503 ("busy, retry"): 5/501 on every call, and a message naming the cause."""
    broken = settings.replace(imgbed_bucket=bucket)
    client = create_app(
        broken, redis_client=fakeredis.FakeRedis(), celery=SentTasks(), store=ObjectStore(broken)
    ).test_client()  # type: ignore[arg-type]
    alice = session_for(settings, "alice")
    answers = [
        client.post(
            UPLOAD,
            data={"file": (io.BytesIO(png()), "a.png", "image/png"), "path": "p"},
            headers=alice,
            content_type="multipart/form-data",
        ),
        client.get("/api/imgbed/v1/images/p/a.png"),
        client.post(DELETE, json={"path": "p", "filename": "a.png"}, headers=alice),
    ]
    for answer in answers:
        assert (answer.status_code, answer.get_json()["errCode"]) == (501, 5), answer.get_json()
        assert "not configured" in answer.get_json()["message"]
        assert "Retry-After" not in answer.headers
        assert (bucket or "RESOURCED_IMGBED_BUCKET") in answer.get_json()["message"]


def test_only_the_owner_or_a_service_deletes(client: FlaskClient, settings: Settings) -> None:
    upload(client, session_for(settings, "alice"), png())
    body = {"path": "avatars/alice", "filename": "me.png"}
    response = client.post(DELETE, json=body, headers=session_for(settings, "mallory"))
    assert (response.status_code, response.get_json()["errCode"]) == (403, 3)
    status, answer = upload(client, session_for(settings, "mallory"), png((0, 0, 0)))
    assert (status, answer["errCode"]) == (403, 3)  # nor overwrite it
    assert client.post(DELETE, json=body).get_json()["errCode"] == 3  # no session at all
    bearer = {"Authorization": "Bearer " + SignedSessions(settings.secret_key).issue("ops", 60, service=True)}
    assert client.post(DELETE, json=body, headers=bearer).get_json()["errCode"] == 0


@pytest.mark.parametrize(
    ("path", "filename"),
    [
        ("../etc", "x.png"),
        ("a/../../b", "x.png"),
        ("/abs", "x.png"),
        ("a\\b", "x.png"),
        ("a/\x00b", "x.png"),
        ("a", "x\n.png"),
        ("a", ".."),
        ("a", "a/b.png"),
        ("a", ""),
        ("a", " "),
        ("a//b", "x.png"),
        ("a" * 900, "b" * 200 + ".png"),
        ("a", "x" * 300 + ".png"),
    ],
)
def test_hostile_names_touch_nothing(
    client: FlaskClient, settings: Settings, s3: Any, path: str, filename: str
) -> None:
    status, answer = upload(client, session_for(settings, "alice"), png(), path=path, filename=filename)
    assert (status, answer["errCode"]) == (400, 2)
    response = client.post(
        DELETE, json={"path": path, "filename": filename}, headers=session_for(settings, "a")
    )
    assert response.get_json()["errCode"] == 2
    assert "Contents" not in s3.list_objects_v2(Bucket="images")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GIF89a but not really",
        b"%PDF-1.4 not an image",
        png()[:40],
        bomb_png(),
        b"<svg onload=alert(1)/>",
    ],
)
def test_not_really_an_image(client: FlaskClient, settings: Settings, s3: Any, data: bytes) -> None:
    status, answer = upload(client, session_for(settings, "alice"), data)
    assert (status, answer["errCode"]) == (400, 2)
    assert "Contents" not in s3.list_objects_v2(Bucket="images")


def test_oversized_upload_is_refused(app: Flask, client: FlaskClient, settings: Settings, s3: Any) -> None:
    app.extensions["resourced"].settings = settings.replace(imgbed_max_bytes=1000)
    big = png(size=(400, 400)) + b"\0" * 5000
    status, answer = upload(client, session_for(settings, "alice"), big)
    assert (status, answer["errCode"]) == (413, 2)
    assert "Contents" not in s3.list_objects_v2(Bucket="images")


def test_bad_delete_bodies(client: FlaskClient, settings: Settings) -> None:
    alice = session_for(settings, "alice")
    for body in (b"nope", b"[]", b'{"path": 1, "filename": "x"}', b'{"path": "a"}'):
        response = client.post(DELETE, data=body, headers=alice, content_type="application/json")
        assert (response.status_code, response.get_json()["errCode"]) == (400, 2)
    huge = b'{"path": "' + b"a" * 200_000 + b'", "filename": "x.png"}'
    response = client.post(DELETE, data=huge, headers=alice, content_type="application/json")
    assert (response.status_code, response.get_json()["errCode"]) == (413, 2)


def test_concurrent_uploads_of_one_name(app: Flask, settings: Settings, s3: Any) -> None:
    """Different owners: exactly one wins. The same owner: the last complete upload stays."""
    results: list[tuple[str, int]] = []

    def send(user: str, color: tuple[int, int, int]) -> None:
        _status, answer = upload(app.test_client(), session_for(settings, user), png(color), path="race")
        results.append((user, answer["errCode"]))

    threads = [threading.Thread(target=send, args=(u, (i * 20, 0, 0))) for i, u in enumerate(["a", "b"] * 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = {user for user, code in results if code == 0}
    assert len(winners) == 1
    assert all(code == 3 for user, code in results if user not in winners)
    stored = s3.get_object(Bucket="images", Key="race/me.png")
    assert stored["Metadata"]["owner"] in winners
    assert Image.open(io.BytesIO(stored["Body"].read())).size == (8, 6)


def jpeg(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_a_name_another_users_export_has_claimed_is_refused(
    client: FlaskClient, settings: Settings, s3: Any, redis_client: fakeredis.FakeRedis
) -> None:
    """Mallory's export into the image bed's bucket checked its keys were free and claimed them;
    until it completes, Alice may not put an image there (Mallory's poster would replace it)."""
    export = export_spec(
        user="mallory",
        start_ms=0,
        duration_ms=1000,
        destination=S3Location("images", "us-east-1", "avatars/alice"),
        video_name="me.mp4",
    )
    assert ExportJobStore(redis_client).admit(export, "export.copy", 10, 10).outcome == "created"
    for name in ("me.jpg", "me.mp4"):  # the poster's key and the video's
        status, answer = upload(client, session_for(settings, "alice"), jpeg((1, 2, 3)), filename=name)
        assert (status, answer["errCode"]) == (403, 3)
    assert "Contents" not in s3.list_objects_v2(Bucket="images")
    status, _ = upload(client, session_for(settings, "alice"), jpeg((1, 2, 3)), filename="other.jpg")
    assert status == 200  # an unclaimed name is hers to take
    status, _ = upload(client, session_for(settings, "mallory"), jpeg((4, 5, 6)), filename="me.jpg")
    assert status == 200  # the claim's owner may write her own key


@pytest.mark.parametrize(
    ("key", "content_type", "metadata"),
    [
        ("sys/page.html", "text/html", {}),  # another system's file
        ("sys/photo.png", "image/png", {}),  # an image the image bed did not write
        ("sys/clip.mp4", "video/mp4", {"owner": "alice", "writer": "alice"}),  # an export's video
    ],
)
def test_only_images_the_service_wrote_are_served(
    client: FlaskClient, s3: Any, key: str, content_type: str, metadata: dict[str, str]
) -> None:
    s3.put_object(
        Bucket="images", Key=key, Body=b"<html>x</html>", ContentType=content_type, Metadata=metadata
    )
    answer = client.get(f"/api/imgbed/v1/images/{key}")
    assert (answer.status_code, answer.get_json()["errCode"]) == (404, 1)
