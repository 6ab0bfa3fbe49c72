"""The snapshot request (API contract section 6): a still of one instant of a recording."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates, validates_schema

from app.schemas.fields import Millis, SmallInt, StorageInfo, entry_for
from tasks.tenancy.objectkeys import MAX_KEY_BYTES, UnsafeKey, safe_path, valid_bucket, valid_region

MIN_WIDTH, MAX_WIDTH = 16, 7680  # a thumbnail at the least, 8K at the most


def _doc(text: str) -> dict[str, str]:
    return {"description": text}


def _check(value: str, **kwargs: Any) -> None:
    try:
        safe_path(value, **kwargs)
    except UnsafeKey as exc:
        raise ValidationError(str(exc)) from exc


class SnapshotRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    storage_info = StorageInfo(required=True)
    LivePath = fields.String(required=True, metadata=_doc("the recording's folder under the ts entry's root"))
    StartPos = Millis(
        required=True, validate=validate.Range(min=0), metadata=_doc("ms on the recording's timeline")
    )
    StartTime = Millis(
        load_default=0, empty_as_zero=True, allow_none=True, metadata=_doc("ms after StartPos; absent: 0")
    )
    Width = SmallInt(
        load_default=0,
        metadata=_doc(
            f"the JPEG's width in pixels ({MIN_WIDTH}-{MAX_WIDTH}), aspect kept; absent: the source's"
        ),
    )
    Rendition = fields.String(
        load_default="",
        validate=validate.Length(max=200),
        metadata=_doc("a rendition's Name as recording-spans lists it, or WIDTHxHEIGHT"),
    )
    ExportS3Region = fields.String(
        load_default="", metadata=_doc("destination region; absent: the mp4 entry's")
    )
    ExportS3Bucket = fields.String(
        load_default="", metadata=_doc("destination bucket; absent: the mp4 entry's")
    )
    ExportS3Key = fields.String(
        load_default="",
        metadata=_doc(
            "the image's key ending in .jpg, or a folder for snapshot.jpg; absent: a folder per request"
        ),
    )
    SessionId = fields.String(required=True, metadata=_doc("the caller's session"))
    userid = fields.String(required=True, metadata=_doc("the caller's user id; must be the session's user"))

    @validates("LivePath")
    def _live_path(self, value: str, **_: Any) -> None:
        _check(value)

    @validates("Width")
    def _width(self, value: int, **_: Any) -> None:
        if value and not MIN_WIDTH <= value <= MAX_WIDTH:
            raise ValidationError(f"must be between {MIN_WIDTH} and {MAX_WIDTH} pixels")

    @validates("ExportS3Bucket")
    def _bucket(self, value: str, **_: Any) -> None:
        if value and not valid_bucket(value):
            raise ValidationError("is not a valid S3 bucket name")

    @validates("ExportS3Region")
    def _region(self, value: str, **_: Any) -> None:
        if value and not valid_region(value):
            raise ValidationError("is not a valid S3 region")

    @validates("ExportS3Key")
    def _key(self, value: str, **_: Any) -> None:
        if value:
            _check(value, max_bytes=MAX_KEY_BYTES - 260)

    @validates_schema(skip_on_field_errors=False)
    def _whole(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        if "StartPos" in data and data["StartPos"] + (data.get("StartTime") or 0) < 0:
            errors["StartTime"] = ["StartPos + StartTime must not be negative"]
        entries = data.get("storage_info")
        if entries is not None and entry_for(entries, "ts") is None:
            errors["storage_info"] = ["needs an enabled S3 entry with storage_purpose 'ts'"]
        elif entries is not None and not data.get("ExportS3Bucket") and entry_for(entries, "mp4") is None:
            errors["ExportS3Bucket"] = ["is required when storage_info has no enabled 'mp4' entry"]
        if errors:
            raise ValidationError(errors)
