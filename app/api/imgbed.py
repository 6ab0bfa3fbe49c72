"""The image bed: upload, fetch and delete images in S3 (API contract, section 2)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request, stream_with_context, url_for

from app.errors import ApiError, error_response, json_body
from app.imaging import NotAnImage, sniff
from app.services import services
from app.session_check import authenticate, header_session_id, require_scope
from tasks.storage import NoSuchBucket, ObjectNotFound
from tasks.tenancy.images import Busy, ImageRef, ImageStore, NotOwner, default_filename
from tasks.tenancy.objectkeys import UnsafeKey
from tasks.tenancy.ownership import OWNER_META, Writer

log = logging.getLogger(__name__)
bp = Blueprint("imgbed", __name__, url_prefix="/api/imgbed/v1")

OK, NO_SUCH_IMAGE, BAD_REQUEST, NOT_ALLOWED, UNAVAILABLE, NOT_CONFIGURED = 0, 1, 2, 3, 4, 5
NOT_CONFIGURED_STATUS = 501  # not "busy, retry" (4/503): nothing changes until an operator acts


def image_store() -> ImageStore:
    """The image bed is optional: a deployment without it still exports, so a missing bucket
    setting is answered per request (5 / 501), not by refusing to start the web tier."""
    settings = services().settings
    if not settings.imgbed_bucket:
        raise ApiError(
            NOT_CONFIGURED,
            "the image bed is not configured on this server (RESOURCED_IMGBED_BUCKET)",
            NOT_CONFIGURED_STATUS,
        )
    return ImageStore(services().store, settings.imgbed_bucket, None, settings.imgbed_prefix)


@bp.errorhandler(NoSuchBucket)
def bucket_missing(exc: NoSuchBucket) -> Response:
    """RESOURCED_IMGBED_BUCKET names a bucket that does not exist: an operator's mistake, said
    as such (and logged for them), never a 500 or a "no such image" that hides it."""
    log.error("the image bed's bucket does not exist", extra={"bucket": exc.bucket})
    message = f"the image bed is not configured on this server (its bucket {exc.bucket!r} does not exist)"
    return error_response(NOT_CONFIGURED, message, NOT_CONFIGURED_STATUS)


def _ref(images: ImageStore, path: Any, filename: Any) -> ImageRef:
    if not isinstance(path, str) or not isinstance(filename, str):
        raise ApiError(BAD_REQUEST, "bad request: path and filename must be strings", 400)
    try:
        return images.ref(path, filename)
    except UnsafeKey as exc:
        raise ApiError(BAD_REQUEST, f"bad request: path or filename {exc}", 400) from exc


@bp.post("/upload")
def upload() -> tuple[dict[str, Any], int]:
    svc = services()
    limit = svc.settings.imgbed_max_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise ApiError(BAD_REQUEST, f"bad request: the upload is larger than {limit} bytes", 413)
    session = authenticate(header_session_id())
    images = image_store()
    file = request.files.get("file")
    if file is None:
        raise ApiError(BAD_REQUEST, "bad request: file is missing (multipart/form-data field 'file')", 400)
    data = file.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(BAD_REQUEST, f"bad request: the upload is larger than {limit} bytes", 413)
    try:
        info = sniff(data, svc.settings.imgbed_max_pixels)
    except NotAnImage as exc:
        raise ApiError(BAD_REQUEST, f"bad request: {exc}", 400) from exc
    filename = request.form.get("filename")  # present but empty is refused below
    if filename is None:
        try:
            filename = default_filename(file.filename, data, info.extension)
        except UnsafeKey as exc:
            raise ApiError(BAD_REQUEST, f"bad request: the upload's file name {exc}", 400) from exc
    ref = _ref(images, request.form.get("path", ""), filename)
    require_scope(session, images.bucket, ref.key, "path")
    writer = Writer(owner=session.user, service=session.user if session.service else "")
    try:
        images.put(ref, data, info.content_type, writer, svc.redis)
    except NotOwner as exc:
        raise ApiError(
            NOT_ALLOWED,
            "forbidden: that name holds an image of someone else or a file the image bed did not write,"
            " or another user's export is writing it",
            403,
        ) from exc
    except Busy as exc:
        raise ApiError(UNAVAILABLE, "busy: another upload of that name is in progress", 503, 1) from exc
    log.info("image stored", extra={"key": ref.key, "bytes": len(data)})
    url = url_for("imgbed.fetch", key="/".join(p for p in (ref.path, ref.filename) if p), _external=True)
    return {"errCode": OK, "message": "uploaded", "path": ref.path, "filename": ref.filename, "url": url}, 200


def is_served_image(meta: dict[str, Any]) -> bool:
    """Only images the service wrote are served: the bucket may hold other systems' files (a
    page, a document) that must not become public under the image bed's URL."""
    written_by_us = bool((meta.get("Metadata") or {}).get(OWNER_META))
    return written_by_us and str(meta.get("ContentType", "")).startswith("image/")


@bp.get("/images/<path:key>")
def fetch(key: str) -> Response:
    """Public by URL, as image beds are (embedding needs no session); ETag and cache headers."""
    images = image_store()
    path, _, filename = key.rpartition("/")
    ref = _ref(images, path, filename)
    try:
        body, meta = images.open(ref)
    except NoSuchBucket:
        raise
    except ObjectNotFound as exc:
        raise ApiError(NO_SUCH_IMAGE, "no such image", 404) from exc
    if not is_served_image(meta):
        body.close()
        raise ApiError(NO_SUCH_IMAGE, "no such image", 404)
    etag = str(meta.get("ETag", "")).strip('"')
    headers = {
        "ETag": f'"{etag}"',
        "Cache-Control": str(meta.get("CacheControl") or "public, max-age=300"),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
    }
    if etag and etag in request.if_none_match:
        body.close()
        return Response(status=304, headers=headers)

    def chunks() -> Any:
        try:
            yield from body.iter_chunks(256 * 1024)
        finally:
            body.close()

    response = Response(stream_with_context(chunks()), mimetype=str(meta.get("ContentType")), headers=headers)
    response.content_length = int(meta.get("ContentLength", 0))
    return response


@bp.post("/delete")
def delete() -> tuple[dict[str, Any], int]:
    body = json_body(64 * 1024)  # {path, filename}: the 20 MiB upload limit is not for this
    body_session = body.get("SessionId") if isinstance(body, dict) else None
    session = authenticate(header_session_id() or body_session)
    if not isinstance(body, dict):
        raise ApiError(BAD_REQUEST, "bad request: the body must be a JSON object {path, filename}", 400)
    images = image_store()
    ref = _ref(images, body.get("path"), body.get("filename"))
    require_scope(session, images.bucket, ref.key, "path")
    try:
        images.delete(ref, session.user, session.service, services().redis)
    except NoSuchBucket:
        raise
    except ObjectNotFound as exc:
        raise ApiError(NO_SUCH_IMAGE, "no such image", 404) from exc
    except NotOwner as exc:
        raise ApiError(
            NOT_ALLOWED,
            "forbidden: only the uploader may delete this image (and nobody a file it did not write)",
            403,
        ) from exc
    except Busy as exc:
        raise ApiError(UNAVAILABLE, "busy: the image is being written, try again", 503, 1) from exc
    return {"errCode": OK, "message": "deleted"}, 200
