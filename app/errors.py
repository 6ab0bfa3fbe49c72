"""Errors in each API's documented shape: ErrorCode/ErrorMessage for exports, errCode/message
for the image bed, code/message for restores. Never a stack trace, never an HTML page."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from tasks.exports.spec import ErrorCode

log = logging.getLogger(__name__)

EXPORT_PREFIX = "/resource/v1/i/export"
IMGBED_PREFIX = "/api/imgbed/"
RESTORE_PREFIX = "/resource/v1/i/restore"


class ApiError(Exception):
    """An answer other than success: `code` in the API's own numbering, and the HTTP status."""

    def __init__(self, code: int, message: str, status: int, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after


def describe_validation(exc: ValidationError) -> str:
    """One line naming every bad field and what is wrong with it."""
    messages = exc.normalized_messages()
    parts = []
    for field, problems in sorted(messages.items()):
        if isinstance(problems, dict):
            problems = [f"{k}: {v}" for k, v in problems.items()]
        text = " ".join(str(p) for p in (problems if isinstance(problems, list) else [problems]))
        parts.append(f"{field}: {text}")
    return "bad request: " + "; ".join(parts)


def error_response(code: int, message: str, status: int, retry_after: int | None = None) -> Response:
    path = request.path
    if path.startswith(IMGBED_PREFIX):
        body: dict[str, object] = {"errCode": code, "message": message}
    elif path.startswith(RESTORE_PREFIX):
        body = {"code": code, "message": message}
    else:
        body = {"ErrorCode": code, "ErrorMessage": message}
        if retry_after is not None:
            body["TimeWait"] = retry_after
    response = jsonify(body)
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _bad_request_code() -> int:
    return 2  # the same number in all three APIs


def _internal_code() -> int:
    if request.path.startswith(IMGBED_PREFIX):
        return 4  # the image bed's "try again later" (documented in docs/api.md)
    if request.path.startswith(RESTORE_PREFIX):
        return 6
    return int(ErrorCode.FAILED)


class SafeJSONProvider(DefaultJSONProvider):
    """Every parser failure is a ValueError, which the request turns into the documented 400.

    The standard parser raises RecursionError for deeply nested input (20,000 `[`), which is no
    ValueError and would escape as a 500; other parser faults are folded in the same way."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except ValueError:
            raise
        except (RecursionError, MemoryError, TypeError) as exc:
            raise ValueError(f"the body is not usable JSON ({type(exc).__name__})") from exc


def install_json_provider(app: Flask) -> None:
    """One place for every JSON endpoint; keeps the settings of the provider it replaces."""
    provider = SafeJSONProvider(app)
    provider.sort_keys = getattr(app.json, "sort_keys", provider.sort_keys)
    app.json = provider


def json_body(limit_bytes: int) -> Any:
    """The request's JSON, or None when it is not JSON (any parser failure, deep nesting too).
    A body over `limit_bytes` is 413, also when it comes chunked, without a Content-Length to
    refuse up front. The answer states the limit, so a client knows what to send instead."""
    too_large = ApiError(
        _bad_request_code(), f"bad request: the body is larger than {limit_bytes} bytes", 413
    )
    request.max_content_length = limit_bytes
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge as exc:
        raise too_large from exc
    if request.content_length is None and len(data) >= limit_bytes and request.input_stream.read(1):
        raise too_large  # werkzeug stops a chunked body at the limit, silently
    return request.get_json(force=True, silent=True)


def register_error_handlers(app: Flask) -> None:
    install_json_provider(app)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.code, exc.message, exc.status, exc.retry_after)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return error_response(_bad_request_code(), describe_validation(exc), 400)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status >= 500:
            return error_response(_internal_code(), exc.name, status)
        return error_response(_bad_request_code(), f"bad request: {exc.name.lower()}", status)

    @app.errorhandler(redis.RedisError)
    def _redis_down(exc: redis.RedisError) -> Response:
        log.error("job store unreachable", extra={"reason": str(exc)})
        return error_response(
            _internal_code(), "service temporarily unavailable: job store unreachable", 503, 5
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(_internal_code(), "internal error", 500)
