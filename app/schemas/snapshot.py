"""The snapshot request (API contract section 6): a still of one instant of a recording."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates

from app.schemas.fields import Millis, SmallInt
from app.schemas.requests import DestinationRequestSchema, doc, rendition_field

MIN_WIDTH, MAX_WIDTH = 16, 7680  # a thumbnail at the least, 8K at the most


class SnapshotRequestSchema(DestinationRequestSchema):
    """The caller, recording and destination fields and checks are the export's (requests.py)."""

    StartPos = Millis(
        required=True,
        strict=True,
        validate=validate.Range(min=0),
        metadata=doc("whole ms on the recording's timeline"),
    )
    StartTime = Millis(
        load_default=0,
        empty_as_zero=True,
        allow_none=True,
        strict=True,
        metadata=doc("whole ms after StartPos; absent: 0"),
    )
    Width = SmallInt(
        load_default=None,  # absent (or null): the source's width; 0 is no width, a bad request
        metadata=doc(
            f"the JPEG's width in pixels ({MIN_WIDTH}-{MAX_WIDTH}), aspect kept; absent: the source's"
        ),
    )
    Rendition = rendition_field("a rendition's Name as recording-spans lists it, or WIDTHxHEIGHT")
    ExportS3Key = fields.String(
        load_default="",
        metadata=doc(
            "the image's key, as given, when it ends in .jpg or .jpeg (any case); any other key is a"
            " folder for snapshot.jpg; absent: a folder per request"
        ),
    )

    @validates("Width")
    def _width(self, value: int | None, **_: Any) -> None:
        if value is not None and not MIN_WIDTH <= value <= MAX_WIDTH:
            raise ValidationError(f"must be between {MIN_WIDTH} and {MAX_WIDTH} pixels")
