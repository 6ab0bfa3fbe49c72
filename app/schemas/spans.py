"""The recording-spans request (API contract section 6): which recording, which window, which page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates

from app.schemas.fields import Millis, entry_for
from app.schemas.requests import RecordingRequestSchema, doc, rendition_field

MAX_WINDOW_MS = 366 * 24 * 3600 * 1000  # a year of timeline: a window is paged, never read at once
CURSOR_MAC_BYTES = 18  # 144 bits: not guessable; 24 URL-safe characters
MAC_CHARS = len(base64.urlsafe_b64encode(bytes(CURSOR_MAC_BYTES)))
CURSOR_DOMAIN = "resourced/recording-spans-cursor/v1"  # this key signs other things too
BOUND_FIELDS = ("LivePath", "Rendition", "StartPos", "Duration")
NOT_OURS = "is not a cursor this service handed out for this request"


def cursor_binding(data: dict[str, Any]) -> list[Any] | None:
    """What a page's cursor is bound to: the recording (the ts entry's bucket and root,
    LivePath), the Rendition and the window; None while one of them did not load (its own field
    error names it)."""
    entries = data.get("storage_info")
    entry = entry_for(entries, "ts") if entries is not None else None
    if entry is None or any(name not in data for name in BOUND_FIELDS):
        return None
    return [
        entry["storage_name"],
        entry.get("storage_root_folder", ""),
        data["LivePath"].strip("/"),
        data["Rendition"],
        data["StartPos"],
        data["Duration"],
    ]


def _mac(secret: str, binding: list[Any], inner: str) -> str:
    if not secret:  # a MAC keyed with "" is anyone's to forge: no cursor verifies without a key
        raise ValueError(NOT_OURS)
    message = json.dumps([CURSOR_DOMAIN, *binding, inner], separators=(",", ":")).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()[:CURSOR_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).decode()


def seal_cursor(secret: str, binding: list[Any], inner: str) -> str:
    """The worker's cursor as the client sees it: `<worker cursor>.<MAC>`, URL-safe. The worker's
    cursor is a plain position, which a client could forge or carry to another recording or
    window (a made-up gap); the MAC, keyed with the web's secret, lets only this service's own
    cursors back, and only for the request they were handed out for. "" (the last page) stays ""."""
    return f"{inner}.{_mac(secret, binding, inner)}" if inner else ""


def open_cursor(secret: str, binding: list[Any], sealed: str) -> str:
    """The worker's cursor inside a sealed one; ValueError when this service did not hand it out
    for this request."""
    inner, dot, mac = sealed.rpartition(".")
    if not dot or not inner or not hmac.compare_digest(mac.encode(), _mac(secret, binding, inner).encode()):
        raise ValueError(NOT_OURS)
    return inner


def well_formed(sealed: str) -> bool:
    """Whether `sealed` has a sealed cursor's shape, for when its request is too broken to check
    its MAC: a cursor that could never verify is named with the request's other bad fields."""
    inner, dot, mac = sealed.rpartition(".")
    return bool(dot and inner) and len(mac) == MAC_CHARS


class SpansRequestSchema(RecordingRequestSchema):
    """The caller and recording fields and checks are the export's (requests.py). `secret` (the
    service's RESOURCED_SECRET_KEY) checks a Cursor against the request it was handed out for;
    the loaded Cursor is the worker's own, unwrapped."""

    StartPos = Millis(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=validate.Range(min=0),
        metadata=doc("ms on the recording's timeline where the window starts; absent: the recording's start"),
    )
    Duration = Millis(
        load_default=None,
        allow_none=True,
        strict=True,
        metadata=doc("ms: the window's length; absent: to the recording's end"),
    )
    Rendition = rendition_field("a rendition's Name (as Renditions lists it) or WIDTHxHEIGHT")
    Cursor = fields.String(
        load_default="",
        validate=validate.Length(max=200),
        metadata=doc(
            "opaque: the Cursor of the previous page of the same request (the same recording,"
            " Rendition, StartPos and Duration); absent or empty: the first page"
        ),
    )

    def __init__(self, secret: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.secret = secret

    @validates("Duration")
    def _duration(self, value: int | None, **_: Any) -> None:
        if value is not None and not 0 < value <= MAX_WINDOW_MS:
            raise ValidationError(f"must be greater than 0 and at most {MAX_WINDOW_MS} ms")

    def errors_across_fields(self, data: dict[str, Any]) -> dict[str, list[str]]:
        errors = super().errors_across_fields(data)
        binding = None if errors else cursor_binding(data)
        cursor = data.get("Cursor")
        if not cursor:
            return errors
        try:
            if binding is not None:
                open_cursor(self.secret, binding, cursor)
            elif not well_formed(cursor):  # named beside the other bad fields all the same
                raise ValueError(NOT_OURS)
        except ValueError as exc:
            errors["Cursor"] = [str(exc)]
        return errors

    @post_load
    def _unwrap(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """The worker gets its own cursor back (verified by errors_across_fields)."""
        binding = cursor_binding(data)
        if data.get("Cursor") and binding is not None:
            data["Cursor"] = open_cursor(self.secret, binding, data["Cursor"])
        return data
