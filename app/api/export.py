"""POST /resource/v1/i/export-to-s3dir: submit an export, and poll it with the same request."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import posixpath
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from kombu.exceptions import OperationalError

from app.api import long_poll
from app.auth import Session
from app.errors import ApiError
from app.schemas.export import ExportRequestSchema
from app.schemas.fields import entry_for
from app.services import Services, services
from app.session_check import authenticated_body, require_bucket, require_scope
from tasks.exports import callbacks, estimate
from tasks.exports.answers import ended_answer, progress_percent
from tasks.exports.routing import export_queue
from tasks.exports.spec import ErrorCode, ExportSpec, ExportType, S3Location
from tasks.exports.states import JobState
from tasks.exports.store import JobRecord
from tasks.platform.celery_app import TaskName
from tasks.platform.webhooks import UrlRefused, resolve_target
from tasks.storage import StorageError
from tasks.tenancy.ownership import export_refusal

log = logging.getLogger(__name__)
bp = Blueprint("export", __name__)

MAX_BODY_BYTES = 256 * 1024  # an export request is a few KB; storage_info is capped at 64 KB
HTTP_STATUS = {
    ErrorCode.PROCESSING: 200,
    ErrorCode.READY: 200,
    ErrorCode.RESTORING: 200,
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.AUTH: 403,  # a worker found the destination taken by someone else (tasks/tenancy/ownership.py)
    ErrorCode.NO_MEDIA: 404,
    ErrorCode.FAILED: 500,
    ErrorCode.BUSY: 429,
    ErrorCode.CANCELLED: 200,
}


def _location(entry: dict[str, Any], default_region: str) -> S3Location:
    return S3Location(
        bucket=entry["storage_name"],
        region=entry.get("storage_location") or default_region,
        prefix=entry.get("storage_root_folder", ""),
    )


def keyed_folder(area: str, user: str, seed: list[Any], secret: str) -> str:
    """A deterministic folder per request (`seed` names the request), so a repeated request
    lands on the same keys; keyed with the service's secret, so no other user can compute it
    and take those keys first. An export's and a snapshot's folders (`area`) both come from here."""
    digest = hmac.new(secret.encode(), json.dumps(seed).encode(), hashlib.sha256).hexdigest()[:20]
    return f"{area}/{user}/{digest}"


def _default_dir(
    user: str, source: S3Location, live_path: str, start: int, data: dict[str, Any], secret: str
) -> str:
    fields = [user, source.bucket, source.prefix, live_path, start, data["Duration"], data["export_type"]]
    if data.get("Rendition"):  # another rendition is another video; without one, the folder is as before
        fields.append(data["Rendition"].strip())
    return keyed_folder("exports", user, fields, secret)


def destination_bucket(data: dict[str, Any], mp4: dict[str, Any] | None) -> tuple[str, str, str]:
    """(bucket, root folder, region) of the output: ExportS3Bucket (the mp4 entry's region when it
    names the same bucket), else the mp4 entry's; region "" means the service's default."""
    if data["ExportS3Bucket"]:
        bucket, root, region = data["ExportS3Bucket"], "", data["ExportS3Region"]
        if not region and mp4 is not None and mp4["storage_name"] == bucket:
            region = mp4["storage_location"]
        return bucket, root, region
    assert mp4 is not None  # the schema refuses a request with neither
    return (
        mp4["storage_name"],
        mp4.get("storage_root_folder", ""),
        data["ExportS3Region"] or mp4["storage_location"],
    )


def split_key(key: str, suffix: str | tuple[str, ...], name: str) -> tuple[str | None, str]:
    """ExportS3Key as (folder, file name): a key ending in `suffix` (any case; one of them, when
    several) names the file itself, any other key is a folder for `name`; no key: (None, name),
    for a folder per request."""
    if key.lower().endswith(suffix):
        return posixpath.dirname(key), posixpath.basename(key)
    return (key or None), name


def build_spec(data: dict[str, Any], user: str, default_region: str, secret: str) -> ExportSpec:
    entries = data["storage_info"]
    source = _location(entry_for(entries, "ts") or {}, default_region)
    mp4 = entry_for(entries, "mp4")
    start = data["StartPos"] + (data.get("StartTime") or 0)
    live_path = data["LivePath"].strip("/")  # `live/cam` and `live/cam/` are one recording, one job
    bucket, root, region = destination_bucket(data, mp4)
    s3_dir, file_name = split_key(data["ExportS3Key"], ".mp4", data["FileName"] or "export.mp4")
    if s3_dir is None:
        s3_dir = _default_dir(user, source, live_path, start, data, secret)
    if not file_name.lower().endswith(".mp4"):
        file_name += ".mp4"
    prefix = "/".join(p for p in (root, s3_dir) if p)
    return ExportSpec(
        user=user,
        source=source,
        live_path=live_path,
        start_ms=start,
        duration_ms=data["Duration"],
        export_type=ExportType(data["export_type"]),
        destination=S3Location(bucket=bucket, region=region or default_region, prefix=prefix),
        video_name=file_name,
        peer_id=data["PeerId"],
        service_caller=data["ServiceCaller"].lower(),
        rendition=data.get("Rendition", "").strip(),
    )


def _slots(svc: Services, queue: str) -> int:
    return max(svc.workers.slots(queue), 1)


def answer(svc: Services, record: JobRecord) -> tuple[dict[str, Any], int]:
    """What a poll of the job answers now; every answer names the job (JobId), and a job still
    on its way says how far it got (Progress, 0-100)."""
    ended = ended_answer(svc.store, record)
    if ended is not None:
        return ended, HTTP_STATUS[ErrorCode(ended["ErrorCode"])]
    job = {"JobId": record.job_id, "Progress": progress_percent(record)}
    if record.state is JobState.PARKED:
        wait = svc.settings.restore_poll_s
        message = "restoring: the range's segments are in archival storage; a restore was started"
        return {"ErrorCode": int(ErrorCode.RESTORING), "ErrorMessage": message, "TimeWait": wait, **job}, 200
    wait = estimate.wait_for(svc.jobs, record, _slots(svc, record.queue))
    step = record.step or record.state.value
    message = f"{record.state.value}: {step} {job['Progress']}%"
    return {"ErrorCode": int(ErrorCode.PROCESSING), "ErrorMessage": message, "TimeWait": wait, **job}, 200


def _enqueue(svc: Services, spec: ExportSpec, token: str, queue: str) -> None:
    """Send the first attempt's message: the job id and the attempt's random token."""
    try:
        svc.celery.send_task(
            TaskName.EXPORT.value,
            args=[spec.job_id, token],
            queue=queue,
            task_id=f"export-{spec.job_id}-{token}",
            headers={"request_id": g.get("request_id", "")},  # follows the job into the worker's logs
        )
    except (OperationalError, OSError) as exc:
        svc.jobs.fail(spec.job_id, token, ErrorCode.FAILED, "could not queue the export: broker unreachable")
        svc.jobs.mark_reported(spec.job_id)  # answered by this 503: the client's retry admits it afresh
        log.error("broker unreachable", extra={"job_id": spec.job_id, "reason": str(exc)})
        raise ApiError(
            int(ErrorCode.FAILED), "service temporarily unavailable: queue unreachable", 503, 5
        ) from exc


class SpecCache:
    """Validated specs by the exact request bytes, briefly: polls repeat the same body, and
    validating it again costs more than the rest of the poll. Auth runs on every request."""

    def __init__(self, size: int = 4096, ttl_s: float = 60.0) -> None:
        self.size, self.ttl_s = size, ttl_s
        self._items: OrderedDict[bytes, tuple[ExportSpec, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> ExportSpec | None:
        with self._lock:
            item = self._items.get(digest)
            if item is None or item[1] < time.monotonic():
                return None
            self._items.move_to_end(digest)
            return item[0]

    def put(self, digest: bytes, spec: ExportSpec) -> None:
        with self._lock:
            self._items[digest] = (spec, time.monotonic() + self.ttl_s)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_specs = SpecCache()


def spec_for_caller(
    svc: Services,
    session: Session,
    data: dict[str, Any],
    build: Callable[[dict[str, Any], str, str, str], ExportSpec],
) -> ExportSpec:
    """The job `build` makes of a validated request, for the user the caller acts for: a service
    session acts for `userid` and is recorded as the writer. Both buckets must be allowed (403)."""
    user = session.user if not session.service else data["userid"]
    spec = build(data, user, svc.settings.aws_region, svc.settings.secret_key)
    if session.service:
        spec = dataclasses.replace(spec, writer=session.user)
    require_bucket(spec.source.bucket, "storage_info (ts)")
    require_bucket(spec.destination.bucket, "the destination")
    return spec


def validated_spec(svc: Services, raw: bytes, body: dict[str, Any], session: Session) -> ExportSpec:
    digest = hashlib.sha256(raw).digest()
    spec = _specs.get(digest)
    if spec is None:
        data = ExportRequestSchema(
            max_duration_ms=svc.settings.max_duration_ms,
            callback_allowlist=svc.settings.callback_allowlist,
        ).load(body)
        spec = spec_for_caller(svc, session, data, build_spec)
        _specs.put(digest, spec)
    require_export_scopes(session, spec)
    return spec


def require_export_scopes(session: Session, spec: ExportSpec) -> None:
    """A scoped session reads only recordings and writes only results under its scopes."""
    require_scope(session, spec.source.bucket, spec.source.key(spec.live_path), "the recording (LivePath)")
    for key in spec.written_keys:
        require_scope(session, spec.destination.bucket, key, "the destination")


def require_free_destination(svc: Services, spec: ExportSpec) -> None:
    """HEAD the video and image keys: someone else's (or an ownerless) object there is refused
    before a job exists; another user's export still on its way there is refused by the
    admission itself (its claims), and the worker looks again right before it writes."""
    try:
        refused = export_refusal(svc.store, spec)
    except StorageError as exc:
        log.error("destination check failed", extra={"job_id": spec.job_id, "reason": str(exc)})
        raise ApiError(int(ErrorCode.FAILED), "service temporarily unavailable: storage", 503, 5) from exc
    if refused is not None:
        raise ApiError(int(ErrorCode.AUTH), refused, 403)


def register_callback(svc: Services, spec: ExportSpec, body: dict[str, Any]) -> None:
    """Remember the request's CallbackUrl for the job, once the address policy allows it: a URL
    it refuses is a bad request (2) before any job starts. An unchanged URL is not resolved again."""
    url = body.get("CallbackUrl") or ""
    if not isinstance(url, str) or not url or callbacks.url_of(svc.redis, spec.job_id) == url:
        return
    try:
        resolve_target(url, svc.settings.callback_allowlist)
    except UrlRefused as exc:
        raise ApiError(int(ErrorCode.BAD_REQUEST), f"bad request: CallbackUrl: {exc}", 400) from exc
    try:
        svc.settings.require_callback_secret()
    except ValueError as exc:
        raise ApiError(int(ErrorCode.FAILED), f"callbacks are not configured: {exc}", 503) from exc
    callbacks.remember(svc.redis, spec.job_id, url, max(svc.settings.job_ttl_s, svc.settings.restore_wait_s))


def admit(svc: Services, spec: ExportSpec) -> None:
    """Admit the job and claim its keys in one atomic step (tasks/exports/scripts.py ADMIT): an
    identical concurrent request finds the job and touches no claim; another user's request
    for a claimed key is refused (3) whatever the timing."""
    require_free_destination(svc, spec)
    queue = export_queue(spec, svc.workers)
    admission = svc.jobs.admit(
        spec,
        queue.value,
        svc.settings.max_active_exports,
        svc.settings.max_active_exports_per_user,
        estimate.wait_for_new(svc.jobs, spec, _slots(svc, queue.value), queue.value),
        # Held as long as the job may live: a job parked for a restore waits up to restore_wait_s.
        claim_ttl_s=max(svc.settings.job_ttl_s, svc.settings.restore_wait_s),
    )
    if admission.outcome == "forbidden":
        key = list(dict.fromkeys(spec.written_keys))[int(admission.detail) - 1]  # the refused claim
        where = f"s3://{spec.destination.bucket}/{key}"
        raise ApiError(
            int(ErrorCode.AUTH), f"forbidden: {where}: an export of another user is writing it", 403
        )
    if admission.outcome == "busy":
        wait = estimate.wait_for_slot(svc.jobs, spec)
        scope = "for this user" if admission.detail == "user" else "on the service"
        raise ApiError(int(ErrorCode.BUSY), f"too busy: too many exports queued {scope}", 429, wait)
    if admission.outcome == "created":
        log.info("export accepted", extra={"job_id": spec.job_id, "queue": queue.value})
        _enqueue(svc, spec, admission.detail, queue.value)


@bp.post("/resource/v1/i/export-to-s3dir")
def export_to_s3dir() -> tuple[Response, int]:
    svc = services()
    body, session = authenticated_body(MAX_BODY_BYTES)
    spec = validated_spec(svc, request.get_data(cache=True), body, session)
    register_callback(svc, spec, body)
    return admitted_answer(svc, spec)


def admitted_answer(svc: Services, spec: ExportSpec) -> tuple[Response, int]:
    """Submit-or-poll one export job (an export's or a snapshot's): admit it when it is new or
    its failure was answered, hold the request while it runs (long polling), and answer its
    state. The one flow of both endpoints, so a snapshot is admitted and answered as an export."""
    record = svc.jobs.get(spec.job_id)
    if record is None or record.state is JobState.FAILED:
        admit(svc, spec)  # new, or a failure to answer once and then retry: the atomic path
        record = svc.jobs.get(spec.job_id)
    if record is None:  # expired between admission and now: answer as accepted, the next poll re-admits
        queued = {
            "ErrorCode": 1,
            "ErrorMessage": "queued",
            "TimeWait": 1,
            "JobId": spec.job_id,
            "Progress": 0,
        }
        return jsonify(queued), 200
    held = long_poll.until_end(
        svc.jobs, record, long_poll.hold_seconds(svc.settings, request.headers.get("Prefer"))
    )
    if held.state is JobState.FAILED and record.state is not JobState.FAILED:
        svc.jobs.mark_reported(spec.job_id)  # answered now: the next identical request starts afresh
    payload, status = answer(svc, held)
    response = jsonify(payload)
    if status == 200 and payload["ErrorCode"] in (int(ErrorCode.PROCESSING), int(ErrorCode.RESTORING)):
        response.headers["Retry-After"] = str(payload["TimeWait"])
    return response, status
