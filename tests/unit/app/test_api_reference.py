"""The API reference in the repository: its examples decode and validate, it covers every field
and ErrorCode, and a bad request is answered with every bad field at once."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.openapi import build_spec
from app.schemas.examples import EXPORT_ANSWERS, STORAGE_ENTRIES
from app.schemas.export import ExportRequestSchema
from app.schemas.fields import decode_storage_info
from app.schemas.responses import ExportResponseSchema
from tasks.platform.settings import Settings
from tests.helpers import export_body, storage_info

ROOT = Path(__file__).resolve().parents[3]
API_MD = (ROOT / "docs" / "api.md").read_text()
URL = "/resource/v1/i/export-to-s3dir"


def docs_storage_info() -> str:
    block = API_MD.split("<!-- storage_info example", 1)[1]
    match = re.search(r"```text\n(\S+)\n```", block)
    assert match is not None
    return match.group(1)


def openapi_storage_info() -> str:
    document = build_spec(Settings())
    request = document["paths"][URL]["post"]["requestBody"]["content"]["application/json"]["example"]
    return str(request["storage_info"])


@pytest.mark.parametrize("encoded", [docs_storage_info(), openapi_storage_info()], ids=["docs", "openapi"])
def test_storage_info_examples_decode_to_the_documented_entries(encoded: str) -> None:
    assert json.loads(base64.b64decode(encoded)) == STORAGE_ENTRIES
    entries = decode_storage_info(encoded)
    assert [e["storage_purpose"] for e in entries] == ["ts", "mp4"]


def test_the_openapi_example_request_validates() -> None:
    document = build_spec(Settings())
    example = document["paths"][URL]["post"]["requestBody"]["content"]["application/json"]["example"]
    data = ExportRequestSchema(max_duration_ms=Settings().max_duration_ms).load(example)
    assert data["LivePath"] == "live/cam1"


def test_every_field_and_error_code_is_documented() -> None:
    request_fields = [f.data_key or name for name, f in ExportRequestSchema(max_duration_ms=1).fields.items()]
    for name in [*request_fields, *ExportResponseSchema().fields, *STORAGE_ENTRIES[0]]:
        assert f"`{name}`" in API_MD, name
    for name in ("code", "type", "task_id", "file_dir", "file_list_status", "callback_url", "errCode"):
        assert f"`{name}`" in API_MD, name
    document = build_spec(Settings())
    properties = document["components"]["schemas"]["ExportRequest"]["properties"]
    assert all(p.get("description") for p in properties.values())
    assert "LackLength" in API_MD and "gap" in API_MD
    examples = {
        example["value"]["ErrorCode"]
        for response in document["paths"][URL]["post"]["responses"].values()
        for example in response["content"]["application/json"].get("examples", {}).values()
    }
    assert examples == set(EXPORT_ANSWERS) == set(range(1, 9))
    for code in range(1, 9):
        assert f'{{"ErrorCode": {code},' in API_MD, code


def test_readme_links_stay_inside_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)", readme):
        if "://" in target:
            continue
        assert (ROOT / target).resolve().is_relative_to(ROOT), target
        assert (ROOT / target).exists(), target
    assert "docs/api.md" in readme


def answer(client: FlaskClient, body: dict[str, Any]) -> str:
    response = client.post(URL, json=body)
    assert response.status_code == 400
    message: str = response.get_json()["ErrorMessage"]
    return message


def test_the_first_answer_names_every_bad_field(client: FlaskClient, session: str) -> None:
    body = export_body(session, "alice", 1_700_000_000_000, 0, storage_info=storage_info("archive"))
    del body["LivePath"]
    message = answer(client, body)
    for field in ("LivePath", "Duration", "ExportS3Bucket"):
        assert field in message, message
    body = export_body(session, "alice", 1_000, 5000, StartTime="-5000")
    del body["LivePath"]
    message = answer(client, body)
    assert "LivePath" in message and "StartTime" in message, message
