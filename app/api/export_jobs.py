"""An export's lifecycle beyond its poll (contract section 6): cancel it, list them.

Both sit on the job state machine (tasks/exports/store.py): a cancel is its CANCEL transition,
not a side channel, and a listing reads its registries. The web only authenticates, picks the
job and answers; the running attempt finds itself fenced off at its next check and stops.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from app.api.export import answer, validated_spec
from app.auth import Session
from app.errors import ApiError
from app.services import Services, services
from app.session_check import authenticate, authenticated_body, header_session_id
from tasks.exports import callbacks
from tasks.exports.answers import ended_answer, progress_percent
from tasks.exports.spec import ErrorCode
from tasks.exports.states import JobState
from tasks.exports.store import JobRecord
from tasks.exports.uploads import take_back
from tasks.storage import StorageError

log = logging.getLogger(__name__)
bp = Blueprint("export_jobs", __name__)

MAX_BODY_BYTES = 256 * 1024
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def _not_yours(job_id: str) -> ApiError:
    """Another user's job and no job at all answer alike: a JobId reveals nothing of others."""
    return ApiError(int(ErrorCode.AUTH), f"forbidden: no export of yours has JobId {job_id!r}", 403)


def _owned(svc: Services, session: Session, job_id: str) -> JobRecord:
    record = svc.jobs.get(job_id)
    if record is None or (record.spec.user != session.user and not session.service):
        raise _not_yours(job_id)
    return record


def _target(svc: Services, body: dict[str, Any], session: Session) -> str:
    """The job a cancel names: its JobId, or the export's own request (whose job is the caller's
    by construction: the user is part of the job's identity)."""
    if "JobId" in body:
        job_id = body["JobId"]
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise ApiError(int(ErrorCode.BAD_REQUEST), "bad request: JobId: not a JobId", 400)
        _owned(svc, session, job_id)
        return job_id
    return validated_spec(svc, request.get_data(cache=True), body, session).job_id


def stop_writing(svc: Services, record: JobRecord) -> None:
    """After the CANCEL transition no attempt can record an upload (the token check): abort the
    ones recorded, so an attempt between its last check and its completion writes nothing, and
    then withdraw what an attempt had completed before (its poster, a video completed after its
    last check): a cancelled export leaves no object version. A failure here is left to the
    attempt, which withdraws the same objects when it finds itself fenced off by the cancel."""
    try:
        aborted, withdrawn = take_back(svc.jobs, svc.store, record)
    except StorageError as exc:  # the bucket's lifecycle rule for incomplete uploads is the backstop
        log.error("cancel could not stop the writes", extra={"job_id": record.job_id, "reason": str(exc)})
        return
    if aborted or withdrawn:
        log.info(
            "cancel stopped the writes",
            extra={"job_id": record.job_id, "uploads": aborted, "withdrawn": withdrawn},
        )


@bp.post("/resource/v1/i/export-cancel")
def export_cancel() -> tuple[Response, int]:
    svc = services()
    body, session = authenticated_body(MAX_BODY_BYTES)
    job_id = _target(svc, body, session)
    outcome, record = svc.jobs.cancel(job_id, svc.settings.cancel_hold_s)
    if outcome == "missing" or record is None:
        if "JobId" in body:
            raise _not_yours(job_id)
        raise ApiError(int(ErrorCode.NO_MEDIA), "no such export: nothing of this request to cancel", 404)
    if outcome == "cancelled":
        log.info("export cancelled", extra={"job_id": job_id})
        stop_writing(svc, record)
        try:
            callbacks.queue_announcement(svc.redis, svc.celery, record, svc.settings.job_ttl_s)
        except Exception:  # the cancel stands; only its callback is lost (logged)
            log.exception("could not announce the cancel", extra={"job_id": job_id})
    payload, status = answer(svc, record)  # 9 now, or the final answer of a job that had ended
    return jsonify(payload), status


def _listed(svc: Services, record: JobRecord, everyone: bool) -> dict[str, Any]:
    """One job as a listing shows it: the request's source, range, type and destination, where
    it is, and its answer once ended. Times are epoch milliseconds, like the timeline."""
    spec = record.spec
    item: dict[str, Any] = {
        "JobId": record.job_id,
        "Kind": "snapshot" if spec.snapshot_ms is not None else "export",
        "State": record.state.value,
        "Progress": progress_percent(record),
        "Source": {"Bucket": spec.source.bucket, "Region": spec.source.region, "Root": spec.source.prefix},
        "LivePath": spec.live_path,
        "StartPos": spec.start_ms,
        "Duration": spec.duration_ms,
        "ExportType": int(spec.export_type),
        "Rendition": spec.rendition,
        "Destination": {
            "Bucket": spec.destination.bucket,
            "Region": spec.destination.region,
            "S3Dir": spec.destination.prefix,
            "Keys": list(spec.written_keys),
        },
        "CreatedAt": round(record.created_at * 1000),
        "EndedAt": round(record.finished_at * 1000) if record.finished_at else None,
        "Answer": ended_answer(svc.store, record),
    }
    if everyone:
        item["User"] = spec.user
    return item


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(int(ErrorCode.BAD_REQUEST), f"bad request: limit: a whole number 1-{MAX_LIMIT}", 400)
    return int(raw)


def _state(raw: str | None) -> JobState | None:
    if not raw:
        return None
    try:
        return JobState(raw)
    except ValueError:
        names = ", ".join(s.value for s in JobState)
        raise ApiError(int(ErrorCode.BAD_REQUEST), f"bad request: state: one of {names}", 400) from None


@bp.get("/resource/v1/i/exports")
def list_exports() -> tuple[Response, int]:
    svc = services()
    session = authenticate(header_session_id())
    limit, state = _limit(request.args.get("limit")), _state(request.args.get("state"))
    everyone = session.service  # a service session sees every user's jobs
    try:
        records, cursor = svc.jobs.list_jobs(
            None if everyone else session.user, state, limit, request.args.get("cursor", "")
        )
    except ValueError as exc:
        raise ApiError(int(ErrorCode.BAD_REQUEST), f"bad request: cursor: {exc}", 400) from exc
    exports = [_listed(svc, record, everyone) for record in records]
    return jsonify({"ErrorCode": 0, "Exports": exports, "Cursor": cursor}), 200
