"""The export request, field names exactly as the original interface document has them."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates, validates_schema

from app.schemas.fields import Millis, SmallInt, StorageInfo, entry_for
from tasks.jobs import ExportType
from tasks.objectkeys import MAX_KEY_BYTES, UnsafeKey, safe_name, safe_path, valid_bucket, valid_region

SERVICE_CALLERS = ("mma", "search")


def _check(fn: Any, value: str, **kwargs: Any) -> None:
    try:
        fn(value, **kwargs)
    except UnsafeKey as exc:
        raise ValidationError(str(exc)) from exc


class ExportRequestSchema(Schema):
    """Validates and normalises; the view turns the result into an ExportSpec."""

    class Meta:
        unknown = EXCLUDE  # gateway and future fields are accepted and ignored

    _ServiceName = fields.String(load_default="", data_key="_ServiceName", attribute="service_name")
    _UrlPath = fields.String(load_default="", data_key="_UrlPath", attribute="url_path")
    _Version = fields.Raw(load_default=None, data_key="_Version", attribute="version")
    ServiceCaller = fields.String(load_default="")
    StartPos = Millis(required=True, validate=validate.Range(min=0))
    StartTime = Millis(load_default=0, empty_as_zero=True, allow_none=True)
    Duration = Millis(required=True)
    PeerId = fields.String(load_default="", validate=validate.Length(max=256))
    LivePath = fields.String(required=True)
    FileName = fields.String(load_default="")
    SessionId = fields.String(required=True)
    export_type = SmallInt(load_default=0)
    storage_info = StorageInfo(required=True)
    userid = fields.String(required=True)
    ExportS3Region = fields.String(load_default="")
    ExportS3Bucket = fields.String(load_default="")
    ExportS3Key = fields.String(load_default="")

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

    @validates_schema(skip_on_field_errors=True)
    def _whole(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        start = data["StartPos"] + (data.get("StartTime") or 0)
        if start < 0:
            errors["StartTime"] = ["StartPos + StartTime must not be negative"]
        entries = data["storage_info"]
        if entry_for(entries, "ts") is None:
            errors["storage_info"] = ["needs an enabled S3 entry with storage_purpose 'ts'"]
        elif not data.get("ExportS3Bucket") and entry_for(entries, "mp4") is None:
            errors["ExportS3Bucket"] = ["is required when storage_info has no enabled 'mp4' entry"]
        if errors:
            raise ValidationError(errors)
