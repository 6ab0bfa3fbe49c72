"""/docs shows real answers: every error response carries an example (no bare "3" placeholder),
the 413 examples state the limit and are word for word what the service answers."""

from __future__ import annotations

import io
import json
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from app.openapi import build_spec
from tasks.platform.settings import Settings
from tests.unit.app.test_imgbed import session_for

EXPORT, UPLOAD, RESTORE = "/resource/v1/i/export-to-s3dir", "/api/imgbed/v1/upload", "/resource/v1/i/restore"


def example(document: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    content = document["paths"][path][method]["responses"][status]["content"]["application/json"]
    return next(iter(content["examples"].values()))["value"]


def test_export_and_imgbed_errors_have_examples_and_the_image_path_is_documented() -> None:
    document = build_spec(Settings())
    assert "/api/imgbed/v1/images/{path}/{filename}" in document["paths"]
    for path in (
        EXPORT,
        UPLOAD,
        "/api/imgbed/v1/delete",
        "/api/imgbed/v1/images/{path}/{filename}",
        RESTORE,
        "/resource/v1/i/restore/{task_id}",
    ):
        for method, operation in document["paths"][path].items():
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json")
                if content is not None and int(status) >= 400:
                    assert content.get("examples"), (path, method, status)
                    assert len(response["description"]) > 2, (path, method, status)


def test_the_413_examples_are_the_real_answers(app: Flask, client: FlaskClient, settings: Settings) -> None:
    settings = settings.replace(imgbed_max_bytes=1000)  # small: a big body spools to a temp file
    app.extensions["resourced"].settings = settings
    document = build_spec(settings)
    too_big = client.post(EXPORT, data=json.dumps({"x": "a" * 300_000}), content_type="application/json")
    assert too_big.status_code == 413
    assert too_big.get_json() == example(document, EXPORT, "post", "413")
    assert str(256 * 1024) in too_big.get_json()["ErrorMessage"]
    too_big = client.post(RESTORE, data=json.dumps({"x": "a" * 1_100_000}), content_type="application/json")
    assert (too_big.status_code, too_big.get_json()) == (413, example(document, RESTORE, "post", "413"))
    form = {"file": (io.BytesIO(b"\0" * 5000), "a.png", "image/png"), "path": "p"}
    upload = client.post(
        UPLOAD, data=form, headers=session_for(settings, "alice"), content_type="multipart/form-data"
    )
    assert upload.status_code == 413
    assert upload.get_json() == example(document, UPLOAD, "post", "413")
