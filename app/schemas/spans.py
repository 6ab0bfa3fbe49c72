"""The recording-spans request (API contract section 6): which recording, which window, which page."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates, validates_schema

from app.schemas.fields import Millis, StorageInfo, entry_for
from tasks.tenancy.objectkeys import UnsafeKey, safe_path

MAX_WINDOW_MS = 366 * 24 * 3600 * 1000  # a year of timeline: a window is paged, never read at once


def _doc(text: str) -> dict[str, str]:
    return {"description": text}


class SpansRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    storage_info = StorageInfo(required=True)
    LivePath = fields.String(required=True, metadata=_doc("the recording's folder under the ts entry's root"))
    StartPos = Millis(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0),
        metadata=_doc(
            "ms on the recording's timeline where the window starts; absent: the recording's start"
        ),
    )
    Duration = Millis(
        load_default=None,
        allow_none=True,
        metadata=_doc("ms: the window's length; absent: to the recording's end"),
    )
    Rendition = fields.String(
        load_default="",
        validate=validate.Length(max=200),
        metadata=_doc("a rendition's Name (as Renditions lists it) or WIDTHxHEIGHT"),
    )
    Cursor = fields.String(
        load_default="",
        validate=validate.Length(max=200),
        metadata=_doc("the Cursor of the previous page of the same request; absent or empty: the first page"),
    )
    SessionId = fields.String(required=True, metadata=_doc("the caller's session"))
    userid = fields.String(required=True, metadata=_doc("the caller's user id; must be the session's user"))

    @validates("LivePath")
    def _live_path(self, value: str, **_: Any) -> None:
        try:
            safe_path(value)
        except UnsafeKey as exc:
            raise ValidationError(str(exc)) from exc

    @validates("Duration")
    def _duration(self, value: int | None, **_: Any) -> None:
        if value is not None and not 0 < value <= MAX_WINDOW_MS:
            raise ValidationError(f"must be greater than 0 and at most {MAX_WINDOW_MS} ms")

    @validates_schema(skip_on_field_errors=False)
    def _whole(self, data: dict[str, Any], **_: Any) -> None:
        entries = data.get("storage_info")
        if entries is not None and entry_for(entries, "ts") is None:
            raise ValidationError({"storage_info": ["needs an enabled S3 entry with storage_purpose 'ts'"]})
