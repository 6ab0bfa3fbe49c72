"""The OpenAPI paths of contract section 6: recording-spans, snapshot, and the export's callback."""

from __future__ import annotations

from typing import Any

from app.schemas.examples import (
    CANCEL_ANSWER,
    CANCEL_REQUEST,
    EXPORTS_ANSWER,
    SNAPSHOT_ANSWER,
    SNAPSHOT_REQUEST,
    SPANS_ANSWER,
    SPANS_REQUEST,
)
from tasks.exports.states import JobState

STATES = tuple(s.value for s in JobState)


def _json(schema: str, description: str, example: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"description": description, "content": {"application/json": content}}


def _errors(schema: str) -> dict[str, Any]:
    return {
        "400": _json(schema, "2: bad request; ErrorMessage names every bad field"),
        "401": _json(schema, "3: no valid session"),
        "403": _json(schema, "3: not the session's user, a bucket not allowed, outside the session's scopes"),
    }


def export_callback() -> dict[str, Any]:
    """What an export's CallbackUrl receives when the job ends (the client implements it)."""
    return {
        "{$request.body#/CallbackUrl}": {
            "post": {
                "summary": "The export's final answer plus JobId, signed as Standard Webhooks",
                "description": "Sent once per job end (5, 4, 6, cancelled); retried with backoff under one"
                " webhook-id until the client answers 2xx with {code: 0}.",
                "requestBody": {"content": {"application/json": {"schema": "ExportResponse"}}},
                "responses": {"200": _json("CodeMessage", "code 0: received; anything else is retried")},
            }
        }
    }


def section6_paths() -> dict[str, dict[str, Any]]:
    return {
        "/resource/v1/i/recording-spans": {
            "post": {
                "summary": "What a recording holds: spans of readable media and the gaps between them",
                "description": "From the archive index (no segment is read), a page at a time (at most 1 h of"
                ' timeline and 400 playlist entries); send Cursor back for the next page, "" on the'
                " last. A span cut at a page boundary continues on the next page (End == next Start)."
                " Cursor is opaque and signed, bound to the request it answered (recording, Rendition,"
                " StartPos, Duration): another is ErrorCode 2 naming Cursor.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": "SpansRequest", "example": SPANS_REQUEST}},
                },
                "responses": {
                    "200": _json("SpansResponse", "0: a page", SPANS_ANSWER),
                    **_errors("SpansResponse"),
                    "404": _json("SpansResponse", "4: nothing under LivePath is a recording"),
                    "503": _json("SpansResponse", "6: no spans worker answered in time, or storage failed"),
                },
            }
        },
        "/resource/v1/i/snapshot": {
            "post": {
                "summary": "The JPEG of the picture on screen at StartPos + StartTime",
                "description": "Answered like an export (1 + TimeWait with long polling, then 5 with"
                ' ImagePath; VideoPath is ""); 4 when no picture is on screen at that instant.',
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": "SnapshotRequest", "example": SNAPSHOT_REQUEST}
                    },
                },
                "responses": {
                    "200": _json("ExportResponse", "1 processing, 5 ready", SNAPSHOT_ANSWER),
                    **_errors("ExportResponse"),
                    "404": _json("ExportResponse", "4: no picture at that instant"),
                    "429": _json("ExportResponse", "7: too busy"),
                    "500": _json("ExportResponse", "6: failed; the next identical request starts afresh"),
                },
            }
        },
        "/resource/v1/i/export-cancel": {
            "post": {
                "summary": "Cancel a queued or running export of the caller's",
                "description": "The body is the export's own request, or {JobId, SessionId, userid}. The"
                " export"
                " stops within a few seconds, leaves no object version and no open upload, gives its keys"
                " back and answers 9 to polls of its request for RESOURCED_CANCEL_HOLD_S seconds (then an"
                " identical request starts afresh). An export that had ended answers its end, unchanged."
                " Another user's JobId and an unknown one both answer 3.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object"},
                            "example": CANCEL_REQUEST,
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        "ExportResponse", "9 cancelled, or the final answer of an ended export", CANCEL_ANSWER
                    ),
                    **_errors("ExportResponse"),
                    "404": _json("ExportResponse", "4: no export of this request to cancel"),
                },
            }
        },
        "/resource/v1/i/exports": {
            "get": {
                "summary": "The caller's exports, newest first (a service session: every user's)",
                "description": "Session in X-Session-Id or Authorization: Bearer. Paged: send Cursor back as"
                ' cursor for the next page, "" on the last. Times are epoch milliseconds.',
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"type": "string", "enum": list(STATES)}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json("ExportList", "0: a page", EXPORTS_ANSWER),
                    "400": _json("ExportList", "2: a bad state, limit or cursor"),
                    "401": _json("ExportList", "3: no valid session"),
                },
            }
        },
    }
