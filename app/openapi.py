"""The OpenAPI 3 document, generated from the marshmallow schemas the views validate with."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from app.api.export import MAX_BODY_BYTES as EXPORT_MAX_BODY_BYTES
from app.openapi_section6 import export_callback, section6_paths
from app.schemas.examples import (
    EXPORT_ANSWERS,
    EXPORT_REQUEST,
    export_refusals,
    imgbed_answers,
    restore_answers,
)
from app.schemas.export import ExportRequestSchema
from app.schemas.fields import StorageEntrySchema
from app.schemas.responses import (
    CodeMessageSchema,
    ExportListSchema,
    ExportResponseSchema,
    HealthSchema,
    ImgbedDeleteRequestSchema,
    ImgbedResponseSchema,
    ImgbedUploadResponseSchema,
    PutRestoreResultSchema,
    RestoreAcceptedSchema,
    RestoreStatusSchema,
    SpansResponseSchema,
)
from app.schemas.restore import RestoreRequestSchema, TestCallbackSchema
from app.schemas.snapshot import SnapshotRequestSchema
from app.schemas.spans import SpansRequestSchema
from tasks.platform.settings import Settings

EXPORT_CODES = {
    1: "accepted or still processing; poll again after TimeWait",
    2: "bad request; ErrorMessage names every bad field",
    3: "session missing, invalid or expired; userid not the session's; bucket not allowed",
    4: "no media at all in the requested range",
    5: "ready to download",
    6: "the export failed; the next identical request starts a fresh attempt",
    7: "too busy; retry after TimeWait (also Retry-After)",
    8: "segments are in archival storage; a restore was started; poll after TimeWait",
}
IMGBED_CODES = {
    0: "success",
    1: "no such image",
    2: "bad request",
    3: "not authenticated or not the owner",
    4: "temporarily unavailable (that name is being written), retry after Retry-After",
    5: "the image bed is not configured on this server (operator's setting; retrying does not help)",
}


def _json(schema: str, description: str, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if examples:
        content["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"description": description, "content": {"application/json": content}}


LONG_POLLING = (
    "Submit, and poll with the same request (identical requests are one job). A poll of a queued"
    " or running job is held open up to RESOURCED_LONG_POLL_S (default 5 s) and answered the moment"
    " the job ends, so a client that sleeps exactly TimeWait is not kept waiting for a finished job;"
    " the first request of a short export is answered 5 directly. `Prefer: wait=0` asks for an"
    " immediate answer. TimeWait (whole seconds, >= 1) is the estimated time left, rounded down."
)


def _export_path() -> dict[str, Any]:
    by_status: dict[int, dict[str, Any]] = {}
    for code, (status, body) in EXPORT_ANSWERS.items():
        by_status.setdefault(status, {})[f"ErrorCode {code}"] = body
    for status, cases in export_refusals(EXPORT_MAX_BODY_BYTES).items():
        by_status.setdefault(status, {}).update(cases)
    descriptions = {
        200: "1 processing, 5 ready, 8 restoring",
        400: "2: bad request; ErrorMessage names every bad field",
        401: "3: no valid session",
        403: (
            "3: not the session's user, a bucket not allowed, outside the session's scopes, or a"
            " destination key that holds another user's object or one the service did not write"
        ),
        404: "4: no media in the range",
        413: f"2: body larger than {EXPORT_MAX_BODY_BYTES} bytes",
        429: "7: too busy; Retry-After repeats TimeWait",
        500: "6: the export failed; the next identical request starts afresh",
        503: "6: the job store or queue is unreachable; retry after TimeWait",
    }
    responses = {
        str(status): _json("ExportResponse", text, by_status.get(status))
        for status, text in descriptions.items()
    }
    for held in ("200", "429"):
        responses[held]["headers"] = {
            "Retry-After": {"description": "with 1, 7 and 8: TimeWait again", "schema": {"type": "integer"}}
        }
    codes = "; ".join(f"{code}: {text}" for code, text in EXPORT_CODES.items())
    prefer = {
        "name": "Prefer",
        "in": "header",
        "required": False,
        "description": "wait=N (RFC 7240): hold this poll at most N seconds (0: answer at once)",
        "schema": {"type": "string", "example": "wait=0"},
    }
    return {
        "post": {
            "summary": "Export a clip of an archived live recording to S3",
            "description": f"{LONG_POLLING} ErrorCode: {codes}",
            "parameters": [prefer],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": "ExportRequest", "example": EXPORT_REQUEST}},
            },
            "responses": responses,
            "callbacks": {"ExportEnded": export_callback()},
        }
    }


def _imgbed_paths(max_upload_bytes: int) -> dict[str, dict[str, Any]]:
    examples = imgbed_answers(max_upload_bytes)
    texts = {
        400: "2: bad request (missing field, unsafe path or name, not an image)",
        401: "3: no valid session",
        403: "3: not the owner (or no owner at all), or outside the session's scopes",
        404: "1: no such image",
        413: f"2: the upload is larger than {max_upload_bytes} bytes",
        501: "5: the image bed is not configured on this server; retrying does not help",
        503: "4: that name is being written; retry after Retry-After",
    }

    def answers(*statuses: int) -> dict[str, Any]:
        return {str(s): _json("ImgbedResponse", texts[s], examples[s]) for s in statuses}

    errors = answers(400, 401, 403, 413, 501, 503)
    codes = "; ".join(f"{c}: {t}" for c, t in IMGBED_CODES.items())
    return {
        "/api/imgbed/v1/upload": {
            "post": {
                "summary": "Upload an image",
                "description": f"errCode: {codes}",
                "security": [{"session": []}, {"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "path": {"type": "string"},
                                    "filename": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"200": _json("ImgbedUploadResponse", "0"), **errors},
            }
        },
        "/api/imgbed/v1/images/{path}/{filename}": {
            "get": {
                "summary": "Fetch an image (public by URL, the `url` an upload answered)",
                "parameters": [
                    {
                        "name": name,
                        "in": "path",
                        "required": True,
                        "description": text,
                        "schema": {"type": "string"},
                    }
                    for name, text in (
                        ("path", "the folder given at upload (it may hold further / segments)"),
                        ("filename", "the image's name"),
                    )
                ],
                "responses": {
                    "200": {
                        "description": "the image bytes",
                        "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "304": {"description": "not modified (ETag)"},
                    **answers(400, 404, 501),
                },
            }
        },
        "/api/imgbed/v1/delete": {
            "post": {
                "summary": "Delete an image (its uploader or a service session)",
                "description": f"errCode: {codes}",
                "security": [{"session": []}, {"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": "ImgbedDeleteRequest"}},
                },
                "responses": {
                    "200": _json("ImgbedResponse", "0"),
                    **answers(404),
                    **errors,
                },
            }
        },
    }


RESTORE_MAX_BODY_BYTES = 1024 * 1024  # app/api/restore.py's json_body limit; a test compares the answers


def _restore_paths() -> dict[str, dict[str, Any]]:
    examples = restore_answers(RESTORE_MAX_BODY_BYTES)
    errors = {
        str(s): _json("CodeMessage", d, examples[s])
        for s, d in [
            (400, "2: bad request"),
            (401, "3: no valid session"),
            (403, "3: not the session's user, a bucket not allowed, or outside the session's scopes"),
            (413, f"2: body larger than {RESTORE_MAX_BODY_BYTES} bytes"),
            (429, "7: too busy (per-user limits); retry after Retry-After"),
            (503, "6: unavailable; retry after Retry-After"),
        ]
    }
    callback = {
        "{$request.body#/callback_url}": {
            "post": {
                "summary": "PutRestoreResult (implemented by the client, signed as Standard Webhooks)",
                "requestBody": {"content": {"application/json": {"schema": "PutRestoreResult"}}},
                "responses": {"200": _json("CodeMessage", "code 0: received; anything else is retried")},
            }
        }
    }
    return {
        "/resource/v1/i/restore": {
            "post": {
                "summary": "Restore archived files and call the client back",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": "RestoreRequest"}},
                },
                "responses": {"200": _json("RestoreAccepted", "0: accepted"), **errors},
                "callbacks": {"PutRestoreResult": callback},
            }
        },
        "/resource/v1/i/restore/{task_id}": {
            "get": {
                "summary": "A restore job and its per-file status",
                "security": [{"session": []}, {"bearer": []}],
                "parameters": [
                    {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json("RestoreStatus", "the job"),
                    "401": _json("CodeMessage", "3: no valid session", examples[401]),
                    "404": _json("CodeMessage", "4: no such job", examples[404]),
                },
            }
        },
        "/resource/v1/i/restore/test-callback": {
            "post": {
                "summary": "Send a type 0 PutRestoreResult to callback_url now",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": "TestCallback"}},
                },
                "responses": {"200": _json("CodeMessage", "0 when the client answered code 0"), **errors},
            }
        },
    }


def build_spec(settings: Settings) -> dict[str, Any]:
    spec = APISpec(
        title="resourced",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Clips of archived live recordings as MP4, an image bed, and Glacier restores."},
    )
    spec.components.security_scheme("session", {"type": "apiKey", "in": "header", "name": "X-Session-Id"})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    schemas = {
        "ExportRequest": ExportRequestSchema(max_duration_ms=settings.max_duration_ms),
        "StorageEntry": StorageEntrySchema,
        "ExportResponse": ExportResponseSchema,
        "ExportList": ExportListSchema,
        "ImgbedResponse": ImgbedResponseSchema,
        "ImgbedUploadResponse": ImgbedUploadResponseSchema,
        "ImgbedDeleteRequest": ImgbedDeleteRequestSchema,
        "CodeMessage": CodeMessageSchema,
        "RestoreRequest": RestoreRequestSchema,
        "RestoreAccepted": RestoreAcceptedSchema,
        "RestoreStatus": RestoreStatusSchema,
        "TestCallback": TestCallbackSchema,
        "PutRestoreResult": PutRestoreResultSchema,
        "Health": HealthSchema,
        "SpansRequest": SpansRequestSchema,
        "SpansResponse": SpansResponseSchema,
        "SnapshotRequest": SnapshotRequestSchema,
    }
    for name, schema in schemas.items():
        spec.components.schema(name, schema=schema)
    spec.path(path="/resource/v1/i/export-to-s3dir", operations=_export_path())
    paths = {**_imgbed_paths(settings.imgbed_max_bytes), **_restore_paths(), **section6_paths()}
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    health = {"200": _json("Health", "ok"), "503": _json("Health", "not ready")}
    spec.path(
        path="/healthz", operations={"get": {"summary": "Process up", "responses": {"200": health["200"]}}}
    )
    spec.path(
        path="/readyz", operations={"get": {"summary": "Redis and broker reachable", "responses": health}}
    )
    return spec.to_dict()
