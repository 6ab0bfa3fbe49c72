"""The export request, field names exactly as the original interface document has them."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates

from app.schemas.fields import Millis, SmallInt
from app.schemas.requests import DestinationRequestSchema, check_key, doc, rendition_field
from tasks.exports.spec import ExportType
from tasks.platform.webhooks import UrlRefused, check_url
from tasks.tenancy.objectkeys import safe_name

SERVICE_CALLERS = ("mma", "search")


class ExportRequestSchema(DestinationRequestSchema):
    """Validates and normalises; the view turns the result into an ExportSpec."""

    _ServiceName = fields.String(
        load_default="",
        data_key="_ServiceName",
        attribute="service_name",
        metadata=doc("gateway routing; logged"),
    )
    _UrlPath = fields.String(
        load_default="", data_key="_UrlPath", attribute="url_path", metadata=doc("gateway routing; logged")
    )
    _Version = fields.Raw(
        load_default=None, data_key="_Version", attribute="version", metadata=doc("gateway routing; logged")
    )
    ServiceCaller = fields.String(load_default="", metadata=doc("who calls: mma or search"))
    StartPos = Millis(
        required=True,
        validate=validate.Range(min=0),
        metadata=doc("ms: the recording's or mark's position on the timeline, as the Search API returns it"),
    )
    StartTime = Millis(
        load_default=0,
        empty_as_zero=True,
        allow_none=True,
        metadata=doc("ms after StartPos where the clip starts; empty or absent: 0"),
    )
    Duration = Millis(
        required=True, metadata=doc("ms: the clip's length; > 0 and at most the configured maximum")
    )
    PeerId = fields.String(
        load_default="",
        validate=validate.Length(max=256),
        metadata=doc("the device whose stream was recorded"),
    )
    LivePath = fields.String(
        required=True, metadata=doc("the recording's folder under the ts entry's root: its *.m3u8 playlists")
    )
    FileName = fields.String(
        load_default="", metadata=doc("the video's file name; .mp4 is appended if missing")
    )
    Rendition = rendition_field(
        "ABR ladders only: the rendition to export, a variant's Name or URI as recording-spans"
        " lists it, or WIDTHxHEIGHT; absent: the highest BANDWIDTH (then resolution)."
        " A name the recording lacks is ErrorCode 2"
    )
    export_type = SmallInt(
        load_default=0, metadata=doc("0: keep the source codec (stream copy); 1: H.264; 2: H.265")
    )
    ExportS3Key = fields.String(
        load_default="",
        metadata=doc("destination folder, or a full key ending in .mp4; absent: a folder per request"),
    )
    CallbackUrl = fields.String(
        load_default="",
        validate=validate.Length(max=2048),
        metadata=doc(
            "optional http(s) URL: the final answer (plus JobId) is POSTed there, signed as Standard"
            " Webhooks, when the job ends; not part of the job's identity (the latest request's URL wins)"
        ),
    )

    def __init__(self, max_duration_ms: int, callback_allowlist: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_duration_ms = max_duration_ms
        self.callback_allowlist = callback_allowlist

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

    @validates("CallbackUrl")
    def _callback(self, value: str, **_: Any) -> None:
        """The address policy's checks that need no DNS (scheme, form, a literal address), here
        beside the other fields, so a refused CallbackUrl is named in the first answer with every
        other bad field; a host name is resolved and judged when the job is registered."""
        if not value:
            return
        try:
            check_url(value, self.callback_allowlist)
        except UrlRefused as exc:
            raise ValidationError(str(exc)) from exc

    @validates("export_type")
    def _type(self, value: int, **_: Any) -> None:
        if value not in {t.value for t in ExportType}:
            raise ValidationError("must be 0 (keep codec), 1 (H.264) or 2 (H.265)")

    @validates("FileName")
    def _file_name(self, value: str, **_: Any) -> None:
        if value:
            check_key(safe_name, value, max_bytes=200)

    @validates("Rendition")
    def _rendition(self, value: str, **_: Any) -> None:
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise ValidationError("must not hold control characters")

    @validates("PeerId")
    def _peer(self, value: str, **_: Any) -> None:
        if value:
            check_key(safe_name, value)
