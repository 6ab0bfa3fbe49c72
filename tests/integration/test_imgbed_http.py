"""The image bed over real HTTP: an oversized upload is refused from its headers alone."""

from __future__ import annotations

import http.client
import io
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

pytestmark = pytest.mark.integration


def test_upload_announcing_too_many_bytes_is_refused_before_any_is_sent(
    web: str, session_id: str, s3: Any
) -> None:
    before = bucket_state(s3)
    target = urlsplit(web)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
    connection.putrequest("POST", "/api/imgbed/v1/upload")
    connection.putheader("X-Session-Id", session_id)
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    # The announced body would name path=big, filename=a.png; the server must not wait for it.
    connection.putheader("Content-Length", str(21 * 1024 * 1024))  # over the 20 MiB default
    connection.endheaders()  # and not one byte of body: a server that waited for it would time out
    response = connection.getresponse()
    assert response.status == 413
    assert b'"errCode":2' in response.read().replace(b" ", b"")
    connection.close()
    assert bucket_state(s3) == before


def bucket_state(s3: Any) -> list[tuple[str, str, str]]:
    """Every object version in the image bed's bucket: a refused upload changes none of them."""
    versions = s3.list_object_versions(Bucket="images")
    return sorted((v["Key"], v["VersionId"], v["ETag"]) for v in versions.get("Versions", []))


def test_round_trip_over_http(web: str, session_id: str) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (3, 3), (0, 200, 0)).save(picture, format="PNG")
    up = requests.post(
        f"{web}/api/imgbed/v1/upload",
        headers={"X-Session-Id": session_id},
        timeout=10,
        files={"file": ("g.png", picture.getvalue())},
        data={"path": "http", "filename": "g.png"},
    )
    assert up.json()["errCode"] == 0
    got = requests.get(up.json()["url"], timeout=10)
    assert got.content == picture.getvalue() and got.headers["Content-Type"] == "image/png"
    gone = requests.post(
        f"{web}/api/imgbed/v1/delete",
        json={"path": "http", "filename": "g.png"},
        headers={"Authorization": f"Bearer {session_id}"},
        timeout=10,
    )
    assert gone.json() == {"errCode": 0, "message": "deleted"}
