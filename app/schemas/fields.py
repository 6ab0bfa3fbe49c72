"""Field types the original interface needs: numbers that old clients send as strings, and the
base64-wrapped JSON `storage_info`."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates

from tasks.tenancy.objectkeys import UnsafeKey, safe_path, valid_bucket, valid_region

MAX_STORAGE_INFO_CHARS = 64 * 1024
NUMERIC = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"  # old clients send numbers as strings
INTEGRAL = r"^\s*-?[0-9]+\s*$"  # the same, for fields that take whole milliseconds only
MAX_SAFE_INTEGER = 2**53  # JSON numbers beyond this lose precision in JavaScript clients


class Millis(fields.Field):
    """An integer number of milliseconds, sent as a JSON number or a numeric string.

    The export's fields keep the original interface's leniency (its document says "number"): a
    fraction is rounded to the nearest ms. `strict` fields (section 6's new endpoints) take whole
    milliseconds only, so a fraction is a bad request naming the field, never silently rounded."""

    def __init__(self, *, empty_as_zero: bool = False, strict: bool = False, **kwargs: Any) -> None:
        kwargs["metadata"] = {
            "oneOf": [{"type": "integer"}, {"type": "string", "pattern": INTEGRAL if strict else NUMERIC}],
            **kwargs.get("metadata", {}),
        }
        super().__init__(**kwargs)
        self.empty_as_zero = empty_as_zero
        self.strict = strict

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise ValidationError("must be a number of milliseconds, not a boolean")
        if isinstance(value, str):
            text = value.strip()
            if not text:
                if self.empty_as_zero:
                    return 0
                raise ValidationError("must not be empty")
            if len(text) > 32:
                raise ValidationError("is not a number")
            try:
                value = float(text) if any(c in text for c in ".eE") else int(text)
            except ValueError as exc:
                raise ValidationError("is not a number") from exc
        if isinstance(value, float):
            value = self._whole(value)
        if not isinstance(value, int):
            raise ValidationError("must be a number of milliseconds")
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValidationError("is out of range")
        return value

    def _whole(self, value: float) -> int:
        if not math.isfinite(value):
            raise ValidationError("must be finite")
        if self.strict and not value.is_integer():
            raise ValidationError("must be a whole number of milliseconds")
        return round(value)


class SmallInt(fields.Field):
    """An enum-like integer (export_type), also as a numeric string."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {
            "oneOf": [{"type": "integer"}, {"type": "string", "pattern": NUMERIC}],
            **kwargs.get("metadata", {}),
        }
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise ValidationError("must be an integer")
        if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 8:
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise ValidationError("must be an integer")


class StorageEntrySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    storage_purpose = fields.String(
        required=True,
        validate=validate.Length(1, 32),
        metadata={"description": "'ts': where the recording is read; 'mp4': the default destination"},
    )
    storage_type = fields.String(load_default="S3", metadata={"description": "only 'S3' entries are used"})
    storage_enable = fields.Raw(
        load_default=True, metadata={"description": "false (or 'false', 0) and the entry is ignored"}
    )
    storage_name = fields.String(required=True, metadata={"description": "the S3 bucket"})
    storage_location = fields.String(load_default="", metadata={"description": "the bucket's region"})
    storage_description = fields.String(load_default="", metadata={"description": "free text, ignored"})
    storage_root_folder = fields.String(
        load_default="", metadata={"description": "key prefix inside the bucket; may be empty"}
    )

    @validates("storage_name")
    def _bucket(self, value: str, **_: Any) -> None:
        if not valid_bucket(value):
            raise ValidationError("is not a valid S3 bucket name")

    @validates("storage_location")
    def _region(self, value: str, **_: Any) -> None:
        if value and not valid_region(value):
            raise ValidationError("is not a valid S3 region")

    @validates("storage_root_folder")
    def _root(self, value: str, **_: Any) -> None:
        try:
            safe_path(value, allow_empty=True)
        except UnsafeKey as exc:
            raise ValidationError(str(exc)) from exc


def _enabled(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def decode_storage_info(value: Any) -> list[dict[str, Any]]:
    """base64(JSON array of entries) -> the enabled, validated S3 entries."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("must be a base64 string")
    if len(value) > MAX_STORAGE_INFO_CHARS:
        raise ValidationError("is too long")
    text = value.strip()
    try:
        raw = base64.b64decode(
            text + "=" * (-len(text) % 4),
            altchars=b"-_" if "-" in text or "_" in text else None,
            validate=True,
        )
    except (binascii.Error, ValueError) as exc:
        raise ValidationError("is not valid base64") from exc
    try:
        decoded = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValidationError("does not decode to JSON") from exc
    if isinstance(decoded, dict) and "storage_info" in decoded:
        decoded = decoded["storage_info"]
    if not isinstance(decoded, list) or len(decoded) > 32:
        raise ValidationError("must be a JSON array of storage entries")
    entries = []
    for index, entry in enumerate(decoded):
        if not isinstance(entry, dict):
            raise ValidationError(f"entry {index} is not an object")
        try:
            loaded = StorageEntrySchema().load(entry)
        except ValidationError as exc:
            detail = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.normalized_messages().items())
            raise ValidationError(f"entry {index}: {detail}") from exc
        if not _enabled(loaded["storage_enable"]):
            continue
        if str(loaded["storage_type"]).upper() != "S3":
            continue
        loaded["storage_root_folder"] = safe_path(loaded["storage_root_folder"], allow_empty=True)
        entries.append(loaded)
    return entries


class StorageInfo(fields.Field):
    def __init__(self, **kwargs: Any) -> None:
        description = (
            "base64 (standard or URL-safe, padding optional) of a JSON array of StorageEntry objects"
            ' (an object {"storage_info": [...]} is accepted too). The enabled S3 entry with'
            " storage_purpose 'ts' is where the recording is read; 'mp4' is the default destination."
            " Bad base64, bad JSON or no enabled 'ts' entry is ErrorCode 2. See docs/api.md."
        )
        kwargs.setdefault("metadata", {"type": "string", "format": "byte", "description": description})
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return decode_storage_info(value)


def entry_for(entries: list[dict[str, Any]], purpose: str) -> dict[str, Any] | None:
    return next((e for e in entries if e["storage_purpose"] == purpose), None)
