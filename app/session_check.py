"""Turning a request's session into a caller, with the API's own error for each failure."""

from __future__ import annotations

from typing import Any

from flask import request

from app.auth import Session
from app.errors import ApiError, json_body
from app.services import services
from tasks.tenancy.objectkeys import valid_user_id

AUTH_CODE = 3  # the same number in the export, image bed and restore APIs
BAD_REQUEST_CODE = 2  # likewise


def header_session_id() -> str:
    """The session from X-Session-Id or Authorization: Bearer (bodies without a session field)."""
    explicit = request.headers.get("X-Session-Id", "").strip()
    if explicit:
        return explicit
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticate(session_id: object, userid: object | None = None) -> Session:
    """The caller's session; with `userid`, it must be the session's own user."""
    if not isinstance(session_id, str) or not session_id.strip():
        raise ApiError(AUTH_CODE, "not authenticated: SessionId is missing", 401)
    session = services().sessions.resolve(session_id.strip())
    if session is None:
        raise ApiError(AUTH_CODE, "not authenticated: the session is invalid or expired", 401)
    if userid is not None:
        if not isinstance(userid, str) or not valid_user_id(userid):
            raise ApiError(2, "bad request: userid: must be 1-128 characters of A-Z a-z 0-9 . _ @ + -", 400)
        if userid != session.user and not session.service:
            raise ApiError(AUTH_CODE, "forbidden: userid is not the session's user", 403)
    return session


def require_bucket(bucket: str, field: str) -> None:
    if not services().settings.bucket_allowed(bucket):
        raise ApiError(AUTH_CODE, f"forbidden: {field} names bucket {bucket!r}, which is not allowed", 403)


def require_scope(session: Session, bucket: str, key: str, field: str) -> None:
    """A scoped session may touch only keys under its `bucket/prefix` scopes (403 otherwise)."""
    if not session.allows(bucket, key):
        raise ApiError(AUTH_CODE, f"forbidden: {field} is outside this session's scopes", 403)


def authenticated_body(limit_bytes: int) -> tuple[dict[str, Any], Session]:
    """The request's JSON object and its caller (SessionId and userid in the body): the one
    prelude of the export, snapshot, spans and export-cancel endpoints, so that each refuses a
    non-object body and a foreign userid with the same answer."""
    body = json_body(limit_bytes)
    if not isinstance(body, dict):
        raise ApiError(BAD_REQUEST_CODE, "bad request: the body must be a JSON object", 400)
    return body, authenticate(body.get("SessionId"), body.get("userid"))
