"""The recording-spans task: a thin shell over workers/archive/spans.py that pushes the answer
to the web request waiting for it."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from tasks.exports.spans_rpc import SpansRequest, send_reply
from tasks.exports.spec import ErrorCode
from tasks.platform.celery_app import TaskName
from tasks.storage import NoSuchBucket, StorageError
from workers.archive.spans import BadCursor, NotARecording, SpansPage, recording_spans, relist_if_stale
from workers.archive.variants import UnknownRendition
from workers.errors import SegmentsArchived
from workers.runtime.clients import runtime

log = logging.getLogger(__name__)

SPANS_SOFT_LIMIT_S = 20  # the web waits less than this; a task past it has no one to answer
SPANS_HARD_LIMIT_S = 30


def page_body(page: SpansPage) -> dict[str, Any]:
    return {
        "ErrorCode": 0,
        "ErrorMessage": "ok",
        "Spans": [{"Start": a, "End": b} for a, b in page.spans],
        "Gaps": [{"Start": a, "End": b} for a, b in page.gaps],
        "Renditions": page.renditions,
        "Cursor": page.cursor,
    }


def answer_spans(request: SpansRequest) -> dict[str, Any]:
    """The body recording-spans answers with, every failure mapped to its ErrorCode."""
    rt = runtime()
    try:
        page = recording_spans(
            rt.store,
            request.source,
            request.live_path,
            request.start_ms,
            request.duration_ms,
            request.cursor,
            rendition=request.rendition,
        )
    except NotARecording as exc:
        return {"ErrorCode": int(ErrorCode.NO_MEDIA), "ErrorMessage": f"no media: {exc}"}
    except UnknownRendition as exc:
        return {"ErrorCode": int(ErrorCode.BAD_REQUEST), "ErrorMessage": exc.message}
    except BadCursor as exc:
        return {"ErrorCode": int(ErrorCode.BAD_REQUEST), "ErrorMessage": f"bad request: Cursor: {exc}"}
    except NoSuchBucket as exc:
        message = f"bad request: storage_info (ts): bucket {exc.bucket!r} does not exist"
        return {"ErrorCode": int(ErrorCode.BAD_REQUEST), "ErrorMessage": message}
    except SegmentsArchived as exc:
        return {"ErrorCode": int(ErrorCode.FAILED), "ErrorMessage": f"playlists in archival storage: {exc}"}
    except StorageError as exc:
        log.warning("spans failed on storage", extra={"reason": str(exc)})
        return {"ErrorCode": int(ErrorCode.FAILED), "ErrorMessage": f"storage failed: {exc}"}
    return page_body(page)


def register_spans_task(celery: Celery) -> None:
    @celery.task(
        name=TaskName.SPANS.value,
        shared=False,
        acks_late=False,  # a web request waits seconds for it: a redelivery minutes later helps no one
        soft_time_limit=SPANS_SOFT_LIMIT_S,
        time_limit=SPANS_HARD_LIMIT_S,
    )
    def spans(request_json: str) -> int:
        request = SpansRequest.from_json(request_json)
        try:
            body = answer_spans(request)
        except Exception as exc:  # the waiting request gets an answer, not a timeout
            log.exception("spans crashed")
            body = {
                "ErrorCode": int(ErrorCode.FAILED),
                "ErrorMessage": f"internal error: {type(exc).__name__}",
            }
        send_reply(runtime().redis, request.reply_to, body)
        if body["ErrorCode"] in (0, ErrorCode.NO_MEDIA):  # answered from a (kept) listing
            relist_after_answer(request)
        return int(body["ErrorCode"])


def relist_after_answer(request: SpansRequest) -> None:
    """The folder LIST a page answered without, made once it has answered: the next page sees
    what changed anywhere in the folder. Its failure costs the next page a probe, no answer."""
    try:
        relist_if_stale(runtime().store, request.source, request.live_path)
    except Exception:  # the client has its answer; this is upkeep
        log.warning("recording listing not refreshed", exc_info=True)
