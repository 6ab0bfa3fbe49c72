"""The recording-spans request (API contract section 6): which recording, which window, which page."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates

from app.schemas.fields import Millis
from app.schemas.requests import RecordingRequestSchema, doc, rendition_field

MAX_WINDOW_MS = 366 * 24 * 3600 * 1000  # a year of timeline: a window is paged, never read at once


class SpansRequestSchema(RecordingRequestSchema):
    """The caller and recording fields and checks are the export's (requests.py)."""

    StartPos = Millis(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0),
        metadata=doc("ms on the recording's timeline where the window starts; absent: the recording's start"),
    )
    Duration = Millis(
        load_default=None,
        allow_none=True,
        metadata=doc("ms: the window's length; absent: to the recording's end"),
    )
    Rendition = rendition_field("a rendition's Name (as Renditions lists it) or WIDTHxHEIGHT")
    Cursor = fields.String(
        load_default="",
        validate=validate.Length(max=200),
        metadata=doc("the Cursor of the previous page of the same request; absent or empty: the first page"),
    )

    @validates("Duration")
    def _duration(self, value: int | None, **_: Any) -> None:
        if value is not None and not 0 < value <= MAX_WINDOW_MS:
            raise ValidationError(f"must be greater than 0 and at most {MAX_WINDOW_MS} ms")
