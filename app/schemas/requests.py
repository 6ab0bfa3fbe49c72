"""What the export, snapshot and recording-spans requests share: who asks, which recording, and
(for the two that write) the S3 destination, with one set of checks, so the three endpoints
refuse the same bad value with the same words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates, validates_schema

from app.schemas.fields import StorageInfo, entry_for
from tasks.tenancy.objectkeys import MAX_KEY_BYTES, UnsafeKey, safe_path, valid_bucket, valid_region

DESTINATION_KEY_MAX_BYTES = MAX_KEY_BYTES - 260  # room under S3's limit for the file names added below it


def doc(text: str) -> dict[str, str]:
    """A field's metadata for the OpenAPI document."""
    return {"description": text}


def check_key(check: Callable[..., Any], value: str, **kwargs: Any) -> None:
    """Runs an object-key check (tasks/tenancy/objectkeys.py), its refusal as the field's error."""
    try:
        check(value, **kwargs)
    except UnsafeKey as exc:
        raise ValidationError(str(exc)) from exc


def rendition_field(description: str) -> fields.String:
    """A request's Rendition: a rendition's name, or WIDTHxHEIGHT; absent: the request's default."""
    return fields.String(load_default="", validate=validate.Length(max=200), metadata=doc(description))


class RecordingRequestSchema(Schema):
    """A request about one recording: the caller (SessionId, userid) and where the recording
    lives (storage_info's ts entry, LivePath)."""

    class Meta:
        unknown = EXCLUDE  # gateway and future fields are accepted and ignored

    storage_info = StorageInfo(required=True)
    LivePath = fields.String(required=True, metadata=doc("the recording's folder under the ts entry's root"))
    SessionId = fields.String(required=True, metadata=doc("the caller's session"))
    userid = fields.String(required=True, metadata=doc("the caller's user id; must be the session's user"))

    @validates("LivePath")
    def _live_path(self, value: str, **_: Any) -> None:
        check_key(safe_path, value)

    @validates_schema(skip_on_field_errors=False)
    def _whole(self, data: dict[str, Any], **_: Any) -> None:
        """Checks across fields; they run beside field errors (with what did load) so the first
        answer names every bad field, never one per round trip."""
        errors = self.errors_across_fields(data)
        if errors:
            raise ValidationError(errors)

    def errors_across_fields(self, data: dict[str, Any]) -> dict[str, list[str]]:
        entries = data.get("storage_info")  # None: missing or malformed, its own field error says so
        if entries is not None and entry_for(entries, "ts") is None:
            return {"storage_info": ["needs an enabled S3 entry with storage_purpose 'ts'"]}
        return {}


class DestinationRequestSchema(RecordingRequestSchema):
    """A request that writes into S3 (an export, a snapshot): an instant or clip of the
    recording (StartPos + StartTime) and its destination (ExportS3*, else storage_info's mp4
    entry). Each subclass declares StartPos, StartTime and ExportS3Key with its own words."""

    ExportS3Region = fields.String(
        load_default="", metadata=doc("destination region; absent: the mp4 entry's")
    )
    ExportS3Bucket = fields.String(
        load_default="", metadata=doc("destination bucket; absent: the mp4 entry's")
    )

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
            check_key(safe_path, value, max_bytes=DESTINATION_KEY_MAX_BYTES)

    def errors_across_fields(self, data: dict[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if "StartPos" in data and data["StartPos"] + (data.get("StartTime") or 0) < 0:
            errors["StartTime"] = ["StartPos + StartTime must not be negative"]
        source = super().errors_across_fields(data)
        entries = data.get("storage_info")
        if source:
            errors.update(source)
        elif entries is not None and not data.get("ExportS3Bucket") and entry_for(entries, "mp4") is None:
            errors["ExportS3Bucket"] = ["is required when storage_info has no enabled 'mp4' entry"]
        return errors
