"""The export request, field names exactly as the original interface document has them."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates, validates_schema

from app.schemas.fields import Millis, SmallInt, StorageInfo, entry_for
from tasks.exports.spec import ExportType
from tasks.tenancy.objectkeys import (
    MAX_KEY_BYTES,
    UnsafeKey,
    safe_name,
    safe_path,
    valid_bucket,
    valid_region,
)

SERVICE_CALLERS = ("mma", "search")


def _doc(text: str) -> dict[str, str]:
    return {"description": text}


def _check(fn: Any, value: str, **kwargs: Any) -> None:
    try:
        fn(value, **kwargs)
    except UnsafeKey as exc:
        raise ValidationError(str(exc)) from exc


class ExportRequestSchema(Schema):
    """Validates and normalises; the view turns the result into an ExportSpec."""

    class Meta:
        unknown = EXCLUDE  # gateway and future fields are accepted and ignored

    _ServiceName = fields.String(
        load_default="",
        data_key="_ServiceName",
        attribute="service_name",
        metadata=_doc("gateway routing; logged"),
    )
    _UrlPath = fields.String(
        load_default="", data_key="_UrlPath", attribute="url_path", metadata=_doc("gateway routing; logged")
    )
    _Version = fields.Raw(
        load_default=None, data_key="_Version", attribute="version", metadata=_doc("gateway routing; logged")
    )
    ServiceCaller = fields.String(load_default="", metadata=_doc("who calls: mma or search"))
    StartPos = Millis(
        required=True,
        validate=validate.Range(min=0),
        metadata=_doc("ms: the recording's or mark's position on the timeline, as the Search API returns it"),
    )
    StartTime = Millis(
        load_default=0,
        empty_as_zero=True,
        allow_none=True,
        metadata=_doc("ms after StartPos where the clip starts; empty or absent: 0"),
    )
    Duration = Millis(
        required=True, metadata=_doc("ms: the clip's length; > 0 and at most the configured maximum")
    )
    PeerId = fields.String(
        load_default="",
        validate=validate.Length(max=256),
        metadata=_doc("the device whose stream was recorded"),
    )
    LivePath = fields.String(
        required=True, metadata=_doc("the recording's folder under the ts entry's root: its *.m3u8 playlists")
    )
    FileName = fields.String(
        load_default="", metadata=_doc("the video's file name; .mp4 is appended if missing")
    )
    Rendition = fields.String(
        load_default="",
        validate=validate.Length(max=200),
        metadata=_doc(
            "ABR ladders only: the rendition to export, a variant's Name or URI as recording-spans"
            " lists it, or WIDTHxHEIGHT; absent: the highest BANDWIDTH (then resolution)."
            " A name the recording lacks is ErrorCode 2"
        ),
    )
    SessionId = fields.String(required=True, metadata=_doc("the caller's session"))
    export_type = SmallInt(
        load_default=0, metadata=_doc("0: keep the source codec (stream copy); 1: H.264; 2: H.265")
    )
    storage_info = StorageInfo(required=True)
    userid = fields.String(required=True, metadata=_doc("the caller's user id; must be the session's user"))
    ExportS3Region = fields.String(
        load_default="", metadata=_doc("destination region; absent: the mp4 entry's")
    )
    ExportS3Bucket = fields.String(
        load_default="", metadata=_doc("destination bucket; absent: the mp4 entry's")
    )
    ExportS3Key = fields.String(
        load_default="",
        metadata=_doc("destination folder, or a full key ending in .mp4; absent: a folder per request"),
    )

    def __init__(self, max_duration_ms: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_duration_ms = max_duration_ms

    @validates("ServiceCaller")
    def _caller(self, value: str, **_: Any) -> None:
        if value and value.lower() not in SERVICE_CALLERS:
            raise ValidationError(f"must be one of {', '.join(SERVICE_CALLERS)}")

    @validates("Duration")
    def _duration(self, value: int, **_: Any) -> None:
        if value <= 0:
            raise ValidationError("must be greater than 0")
        if value > self.max_duration_ms:
            raise ValidationError(f"must be at most {self.max_duration_ms} ms")

    @validates("export_type")
    def _type(self, value: int, **_: Any) -> None:
        if value not in {t.value for t in ExportType}:
            raise ValidationError("must be 0 (keep codec), 1 (H.264) or 2 (H.265)")

    @validates("LivePath")
    def _live_path(self, value: str, **_: Any) -> None:
        _check(safe_path, value)

    @validates("FileName")
    def _file_name(self, value: str, **_: Any) -> None:
        if value:
            _check(safe_name, value, max_bytes=200)

    @validates("Rendition")
    def _rendition(self, value: str, **_: Any) -> None:
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise ValidationError("must not hold control characters")

    @validates("PeerId")
    def _peer(self, value: str, **_: Any) -> None:
        if value:
            _check(safe_name, value)

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
            _check(safe_path, value, max_bytes=MAX_KEY_BYTES - 260)

    @validates_schema(skip_on_field_errors=False)
    def _whole(self, data: dict[str, Any], **_: Any) -> None:
        """Checks across fields; they run beside field errors (with what did load) so the first
        answer names every bad field, never one per round trip."""
        errors: dict[str, list[str]] = {}
        if "StartPos" in data and data["StartPos"] + (data.get("StartTime") or 0) < 0:
            errors["StartTime"] = ["StartPos + StartTime must not be negative"]
        entries = data.get("storage_info")
        if entries is None:  # missing or malformed: its own field error says so
            pass
        elif entry_for(entries, "ts") is None:
            errors["storage_info"] = ["needs an enabled S3 entry with storage_purpose 'ts'"]
        elif not data.get("ExportS3Bucket") and entry_for(entries, "mp4") is None:
            errors["ExportS3Bucket"] = ["is required when storage_info has no enabled 'mp4' entry"]
        if errors:
            raise ValidationError(errors)
