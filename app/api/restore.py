"""Restore jobs for archived recordings, and the test ping of a client's callback."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Blueprint, request
from kombu.exceptions import OperationalError

from app.errors import ApiError, json_body
from app.schemas.fields import entry_for
from app.schemas.restore import RestoreRequestSchema, TestCallbackSchema
from app.services import services
from app.session_check import authenticate, header_session_id, require_bucket, require_scope
from tasks.platform.celery_app import Queue, TaskName
from tasks.platform.settings import ConfigError
from tasks.platform.webhooks import DeliveryFailed, UrlRefused, deliver, resolve_target, restore_result
from tasks.restore.store import Admission, RestoreFile, RestoreJob, RestoreJobStore
from tasks.tenancy import ratelimit
from tasks.tenancy.objectkeys import valid_user_id

bp = Blueprint("restore", __name__, url_prefix="/resource/v1/i/restore")
OK, FAILED, BAD_REQUEST, NOT_ALLOWED, NOT_FOUND, BUSY = 0, 1, 2, 3, 4, 7
TEST_CALLBACK_DEADLINE_S = 10.0  # the contract's total deadline for test-callback
DEADLINE_MARGIN_S = 1.0  # for authenticating and answering, inside the 10 s
# The name is resolved within RESOLVE_TIMEOUT_S (4 s) of tasks/webhooks, the delivery gets the rest.


def _body() -> dict[str, Any]:
    body = json_body(1024 * 1024)
    if not isinstance(body, dict):
        raise ApiError(BAD_REQUEST, "bad request: the body must be a JSON object", 400)
    return body


def _check_url(url: str) -> None:
    try:
        resolve_target(url, services().settings.callback_allowlist)
    except UrlRefused as exc:
        raise ApiError(BAD_REQUEST, f"bad request: callback_url: {exc}", 400) from exc


def _admit(restores: RestoreJobStore, job: RestoreJob) -> bool:
    """True when the job was created now, False when this user already has it (idempotent)."""
    settings = services().settings
    outcome = restores.admit(job, settings.restore_max_active_per_user, settings.restore_max_files_per_job)
    wait = settings.restore_poll_s  # a running restore cannot settle before its next check
    if outcome is Admission.TOO_MANY_FILES:
        limit = settings.restore_max_files_per_job
        raise ApiError(BUSY, f"too busy: at most {limit} files per restore job; split the list", 429, wait)
    if outcome is Admission.BUSY:
        limit = settings.restore_max_active_per_user
        raise ApiError(BUSY, f"too busy: this user has {limit} restore jobs running", 429, wait)
    return outcome is Admission.CREATED


@bp.post("")
def create() -> tuple[dict[str, Any], int]:
    svc = services()
    body = _body()
    session = authenticate(body.get("SessionId"), body.get("userid"))
    data = RestoreRequestSchema().load(body)
    entry = entry_for(data["storage_info"], data["storage_purpose"])
    if entry is None:
        raise ApiError(
            BAD_REQUEST, f"bad request: storage_info: no enabled '{data['storage_purpose']}' entry", 400
        )
    require_bucket(entry["storage_name"], "storage_info")
    prefix = "/".join(p for p in (entry["storage_root_folder"], data["file_dir"].strip("/")) if p)
    require_scope(session, entry["storage_name"], prefix, "file_dir")
    _check_url(data["callback_url"])
    job = RestoreJob(
        task_id=data["task_id"] or uuid.uuid4().hex,
        user=data["userid"] if session.service else session.user,
        bucket=entry["storage_name"],
        region=entry["storage_location"] or svc.settings.aws_region,
        file_dir=data["file_dir"],
        callback_url=data["callback_url"],
        days=data["days"],
        tier=data["tier"],
        files=[RestoreFile(name=n, key=f"{prefix}/{n}" if prefix else n) for n in data["file_list"]],
    )
    restores = RestoreJobStore(svc.redis)
    if not _admit(restores, job):
        return {"code": OK, "message": "already accepted", "task_id": job.task_id}, 200
    try:
        svc.celery.send_task(
            TaskName.RESTORE_POLL.value,
            args=[job.ref],
            queue=Queue.RESTORE.value,
            task_id=f"restore-{job.ref}",
        )
    except (OperationalError, OSError) as exc:
        restores.delete(job.ref)
        raise ApiError(FAILED, "service temporarily unavailable: queue unreachable", 503, 5) from exc
    return {"code": OK, "message": "accepted", "task_id": job.task_id}, 200


@bp.get("/<task_id>")
def status(task_id: str) -> tuple[dict[str, Any], int]:
    """The caller's own job of that id (a service session names the user with ?userid=)."""
    session = authenticate(header_session_id())
    user = session.user
    if session.service and valid_user_id(request.args.get("userid", "")):
        user = request.args["userid"]
    job = None
    if len(task_id) <= 128 and ":" not in task_id:
        job = RestoreJobStore(services().redis).get_for(user, task_id)
    if job is None:
        raise ApiError(NOT_FOUND, "no such restore job", 404)
    return {"code": OK, "message": "ok", **job.public()}, 200


def _limit_tests(user: str) -> None:
    svc = services()
    limit = svc.settings.test_callback_per_minute
    wait = ratelimit.retry_after(svc.redis, "test-callback", user, limit)
    if wait:
        raise ApiError(BUSY, f"too busy: at most {limit} callback tests a minute; retry later", 429, wait)


@bp.post("/test-callback")
def test_callback() -> tuple[dict[str, Any], int]:
    """Send a type 0 PutRestoreResult now; code 0 when the client answered code 0. Answers
    within TEST_CALLBACK_DEADLINE_S whatever the client does, and is rate-limited per user."""
    started = time.monotonic()
    svc = services()
    settings = svc.settings
    body = _body()
    session = authenticate(body.get("SessionId"), body.get("userid"))
    data = TestCallbackSchema().load(body)
    payload = restore_result(f"test-{uuid.uuid4().hex[:12]}", "", {}, 0, "network test", kind=0)
    try:
        target = resolve_target(data["callback_url"], settings.callback_allowlist)  # a bad URL: code 2
        secret = settings.require_callback_secret()
        _limit_tests(session.user)  # counts what goes out: a refused URL sends nothing
        budget = TEST_CALLBACK_DEADLINE_S - DEADLINE_MARGIN_S - (time.monotonic() - started)
        deliver(
            data["callback_url"],
            payload,
            secret,
            settings.callback_allowlist,
            budget,
            f"msg_{payload['task_id']}",
            target,
        )
    except ConfigError as exc:
        raise ApiError(FAILED, f"callbacks are not configured: {exc}", 503) from exc
    except UrlRefused as exc:
        return {"code": BAD_REQUEST, "message": f"refused: {exc}"}, 200
    except DeliveryFailed as exc:
        return {"code": FAILED, "message": str(exc)}, 200
    return {"code": OK, "message": "the callback answered code 0"}, 200
