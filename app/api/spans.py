"""POST /resource/v1/i/recording-spans: what a recording holds, as spans and gaps, a page at a time.

The web authenticates and validates; a worker on the `spans` queue reads the archive index and
answers within SPANS_WAIT_S (the web has no archive code: docs/decisions.md). The worker's
cursor is a bare position: the web seals it (app/schemas/spans.py) to the request it answers,
and lets only its own sealed cursors back.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, g, jsonify
from kombu.exceptions import OperationalError

from app.errors import ApiError
from app.schemas.fields import entry_for
from app.schemas.spans import SpansRequestSchema, cursor_binding, seal_cursor
from app.services import services
from app.session_check import authenticated_body, require_bucket, require_scope
from tasks.exports.spans_rpc import SpansRequest, new_reply_key, wait_reply
from tasks.exports.spec import ErrorCode, S3Location
from tasks.platform.celery_app import Queue, TaskName

log = logging.getLogger(__name__)
bp = Blueprint("spans", __name__)

MAX_BODY_BYTES = 256 * 1024
SPANS_WAIT_S = 10  # a page reads the index and a few playlists: seconds at worst
HTTP_STATUS = {0: 200, 2: 400, 3: 403, 4: 404, 6: 503}


def spans_request(data: dict[str, Any], default_region: str) -> SpansRequest:
    entry = entry_for(data["storage_info"], "ts") or {}
    source = S3Location(
        bucket=entry["storage_name"],
        region=entry.get("storage_location") or default_region,
        prefix=entry.get("storage_root_folder", ""),
    )
    return SpansRequest(
        source=source,
        live_path=data["LivePath"].strip("/"),
        start_ms=data["StartPos"],
        duration_ms=data["Duration"],
        rendition=data["Rendition"],
        cursor=data["Cursor"],
        reply_to=new_reply_key(),
    )


@bp.post("/resource/v1/i/recording-spans")
def recording_spans() -> tuple[Response, int]:
    svc = services()
    body, session = authenticated_body(MAX_BODY_BYTES)
    data = SpansRequestSchema(secret=svc.settings.secret_key).load(body)
    request = spans_request(data, svc.settings.aws_region)
    require_bucket(request.source.bucket, "storage_info (ts)")
    require_scope(
        session, request.source.bucket, request.source.key(request.live_path), "the recording (LivePath)"
    )
    try:
        svc.celery.send_task(
            TaskName.SPANS.value,
            args=[request.to_json()],
            queue=Queue.SPANS.value,
            task_id=f"spans-{request.reply_to.rsplit(':', 1)[-1]}",
            expires=SPANS_WAIT_S,  # nobody waits for it after that
            headers={"request_id": g.get("request_id", "")},
        )
    except (OperationalError, OSError) as exc:
        log.error("broker unreachable", extra={"reason": str(exc)})
        raise ApiError(
            int(ErrorCode.FAILED), "service temporarily unavailable: queue unreachable", 503, 5
        ) from exc
    answer = wait_reply(svc.redis, request.reply_to, SPANS_WAIT_S)
    if answer is None:
        raise ApiError(
            int(ErrorCode.FAILED), "service temporarily unavailable: no spans worker answered", 503, 2
        )
    return jsonify(sealed(answer, data, svc.settings.secret_key)), HTTP_STATUS.get(
        int(answer["ErrorCode"]), 500
    )


def sealed(answer: dict[str, Any], data: dict[str, Any], secret: str) -> dict[str, Any]:
    """The worker's answer with its next-page Cursor bound to this request (seal_cursor)."""
    binding = cursor_binding(data)
    if not answer.get("Cursor") or binding is None:
        return answer
    return {**answer, "Cursor": seal_cursor(secret, binding, str(answer["Cursor"]))}
