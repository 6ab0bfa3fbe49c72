"""Rules for S3 keys and names that come from clients: the same for exports and the image bed.

A client-supplied path must never escape the folder it is put under, hide control characters
in logs, disguise itself with invisible format characters (Unicode category Cf: a right-to-left
override makes `x\u202egnp.exe` display as `xexe.png`), or grow past S3's key limit.
"""

from __future__ import annotations

import re
import unicodedata

MAX_KEY_BYTES = 1024  # S3's limit on a whole key
MAX_SEGMENT_BYTES = 255
_USER_ID = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z0-9]+){1,4}$")


class UnsafeKey(ValueError):
    pass


def _has_control(text: str) -> bool:
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029" for ch in text)


def _has_format(text: str) -> bool:
    """Bidirectional overrides, zero-width characters and other invisible format characters."""
    return any(unicodedata.category(ch) == "Cf" for ch in text)


def _check_characters(value: str) -> None:
    if _has_control(value):
        raise UnsafeKey("must not contain control characters")
    if _has_format(value):
        raise UnsafeKey("must not contain bidirectional or other invisible format characters")


def safe_name(value: str, max_bytes: int = MAX_SEGMENT_BYTES) -> str:
    """One path segment: a file name."""
    if not value or not value.strip():
        raise UnsafeKey("must not be empty")
    if "/" in value or "\\" in value:
        raise UnsafeKey("must be a plain name, without / or \\")
    if value in {".", ".."}:
        raise UnsafeKey("must not be . or ..")
    _check_characters(value)
    if len(value.encode()) > max_bytes:
        raise UnsafeKey(f"must be at most {max_bytes} bytes")
    return value


def safe_path(value: str, max_bytes: int = MAX_KEY_BYTES, allow_empty: bool = False) -> str:
    """A relative folder path: segments joined by /, none of them . or .., no absolute start."""
    if value is None or not value.strip():
        if allow_empty:
            return ""
        raise UnsafeKey("must not be empty")
    if value.startswith("/") or "\\" in value:
        raise UnsafeKey("must be a relative path without \\")
    _check_characters(value)
    stripped = value.strip("/") if value.endswith("/") else value
    parts = stripped.split("/")
    for part in parts:
        if part in {"", ".", ".."}:
            raise UnsafeKey("must not contain empty, . or .. segments")
        if len(part.encode()) > MAX_SEGMENT_BYTES:
            raise UnsafeKey(f"segments must be at most {MAX_SEGMENT_BYTES} bytes")
    if len(stripped.encode()) > max_bytes:
        raise UnsafeKey(f"must be at most {max_bytes} bytes")
    return stripped


def valid_user_id(value: str) -> bool:
    return bool(_USER_ID.match(value or ""))


def valid_bucket(value: str) -> bool:
    return bool(_BUCKET.match(value or "")) and ".." not in value


def valid_region(value: str) -> bool:
    return bool(_REGION.match(value or ""))
