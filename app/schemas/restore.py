"""Restore requests (the service side of PutRestoreResult), validated like exports."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates

from app.schemas.fields import SmallInt, StorageInfo
from tasks.tenancy.objectkeys import UnsafeKey, safe_name, safe_path

TIERS = ("Standard", "Bulk", "Expedited")
MAX_FILES = 1000
_TASK_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class RestoreRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    task_id = fields.String(load_default="")
    storage_info = StorageInfo(required=True)
    storage_purpose = fields.String(load_default="ts", validate=validate.Length(1, 32))
    file_dir = fields.String(load_default="")
    file_list = fields.List(fields.String(), required=True, validate=validate.Length(1, MAX_FILES))
    callback_url = fields.String(required=True, validate=validate.Length(1, 2048))
    days = SmallInt(load_default=3, validate=validate.Range(1, 365))
    tier = fields.String(load_default="Standard", validate=validate.OneOf(TIERS))
    SessionId = fields.String(required=True)
    userid = fields.String(required=True)

    @validates("task_id")
    def _task_id(self, value: str, **_: Any) -> None:
        if value and not _TASK_ID.match(value):
            raise ValidationError("must be 1-128 characters of A-Z a-z 0-9 . _ -")

    @validates("file_dir")
    def _dir(self, value: str, **_: Any) -> None:
        try:
            safe_path(value, allow_empty=True)
        except UnsafeKey as exc:
            raise ValidationError(str(exc)) from exc

    @validates("file_list")
    def _files(self, value: list[str], **_: Any) -> None:
        for name in value:
            try:
                safe_name(name)
            except UnsafeKey as exc:
                raise ValidationError(f"{name[:80]!r}: {exc}") from exc
        if len(set(value)) != len(value):
            raise ValidationError("names must not repeat")


class TestCallbackSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    callback_url = fields.String(required=True, validate=validate.Length(1, 2048))
    SessionId = fields.String(required=True)
    userid = fields.String(required=True)
