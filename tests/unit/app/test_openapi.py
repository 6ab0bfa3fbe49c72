"""The served OpenAPI document, and schemathesis fuzzing against it: no request may produce a
500 or a response that breaks the documented schema. Bounded in examples and time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate

from app import create_app
from app.auth import SignedSessions
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.helpers import moto_buckets
from tests.unit.app.conftest import SentTasks

SETTINGS = Settings(
    secret_key="fuzz-secret-key-0123456789abcdef",
    allowed_buckets=("archive", "exports"),
    imgbed_bucket="images",
    max_active_exports=50,
    callback_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
)
REFUSED_CALLBACK = "http://127.0.0.1:9/cb"  # loopback, not allowlisted: refused before any connection
SESSION = SignedSessions(SETTINGS.secret_key).issue("alice", 3600)
APP = create_app(
    SETTINGS, redis_client=fakeredis.FakeRedis(), celery=SentTasks(), store=ObjectStore(SETTINGS)
)  # type: ignore[arg-type]
# Readiness answers 503 without a broker, which is its job; the health probes have their own tests.
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP).exclude(path_regex="^/(readyz|healthz)$")


@pytest.fixture(scope="module", autouse=True)
def s3_buckets() -> Iterator[None]:
    """moto's in-process S3 for this module only (started at import it would capture every test)."""
    with moto_buckets("archive", "exports", "images"):
        yield


def test_document_is_valid_openapi_and_covers_the_contract() -> None:
    document = APP.test_client().get("/openapi.json").get_json()
    validate(document)
    assert set(document["paths"]) >= {
        "/resource/v1/i/export-to-s3dir",
        "/api/imgbed/v1/upload",
        "/api/imgbed/v1/delete",
        "/resource/v1/i/restore",
        "/resource/v1/i/restore/{task_id}",
        "/resource/v1/i/restore/test-callback",
    }
    fields = document["components"]["schemas"]["ExportRequest"]["properties"]
    for name in (
        "_ServiceName",
        "_UrlPath",
        "_Version",
        "ServiceCaller",
        "StartPos",
        "StartTime",
        "Duration",
        "PeerId",
        "LivePath",
        "FileName",
        "SessionId",
        "export_type",
        "storage_info",
        "userid",
        "ExportS3Region",
        "ExportS3Bucket",
        "ExportS3Key",
    ):
        assert name in fields
    export = document["paths"]["/resource/v1/i/export-to-s3dir"]["post"]
    assert all(f"{code}:" in export["description"] for code in range(1, 9))
    assert "PutRestoreResult" in document["paths"]["/resource/v1/i/restore"]["post"]["callbacks"]
    assert set(document["components"]["schemas"]["PutRestoreResult"]["properties"]) == {
        "code",
        "message",
        "type",
        "task_id",
        "file_dir",
        "file_list_status",
    }
    assert APP.test_client().get("/docs").status_code == 200
    asset = APP.test_client().get("/docs/swagger-ui-bundle.js")
    assert asset.status_code == 200
    asset.close()  # a file response holds the file open until closed


@schema.hook
def map_body(ctx: Any, body: Any) -> Any:
    """Half the bodies carry a valid session for 'alice', so fuzzing reaches past authentication."""
    if isinstance(body, dict) and "SessionId" in body and hash(str(body)) % 2 == 0:
        body["SessionId"], body["userid"] = SESSION, "alice"
    if isinstance(body, dict) and "callback_url" in body:
        body["callback_url"] = REFUSED_CALLBACK  # the fuzzer must never make the service connect anywhere
    return body


@schema.hook
def map_headers(ctx: Any, headers: Any) -> Any:
    headers = dict(headers or {})
    headers.setdefault("X-Session-Id", SESSION)
    return headers


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_no_server_errors_and_documented_responses(case: Any) -> None:
    case.call_and_validate(
        checks=[
            schemathesis.checks.not_a_server_error,
            schemathesis.checks.status_code_conformance,
            schemathesis.checks.content_type_conformance,
            schemathesis.checks.response_schema_conformance,
        ]
    )
