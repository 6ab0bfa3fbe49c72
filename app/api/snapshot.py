"""POST /resource/v1/i/snapshot: the JPEG of the picture on screen at one instant.

A snapshot is an export job of the same store (ExportSpec.snapshot_ms), so it is admitted,
claimed, fenced, long-polled and answered exactly as an export is (app/api/export.py); a worker
decodes at most one GOP (workers/jobs/snapshot.py). Usually the first, held request answers 5.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from app.api.export import (
    _location,
    admitted_answer,
    destination_bucket,
    keyed_folder,
    require_export_scopes,
    spec_for_caller,
    split_key,
)
from app.auth import Session
from app.schemas.fields import entry_for
from app.schemas.snapshot import SnapshotRequestSchema
from app.services import services
from app.session_check import authenticated_body
from tasks.exports.spec import IMAGE_SUFFIXES, ExportSpec, ExportType, S3Location

bp = Blueprint("snapshot", __name__)

MAX_BODY_BYTES = 256 * 1024
DEFAULT_NAME = "snapshot.jpg"


def image_name(name: str) -> str:
    """The spec's video_name for an image named `name` (no video is written; it names the image).
    `x.jpg` is `x.mp4`, as snapshots were always named (their job ids and keys stay); any other
    ending (`x.JPG`, `x.jpeg`) is kept as given, and ExportSpec.image_key is then `name` itself."""
    return name[: -len(".jpg")] + ".mp4" if name.endswith(".jpg") else name


def _default_dir(user: str, source: S3Location, live_path: str, at_ms: int, width: int, secret: str) -> str:
    seed = ["snapshot", user, source.bucket, source.prefix, live_path, at_ms, width]
    return keyed_folder("snapshots", user, seed, secret)


def build_snapshot_spec(data: dict[str, Any], user: str, default_region: str, secret: str) -> ExportSpec:
    entries = data["storage_info"]
    source = _location(entry_for(entries, "ts") or {}, default_region)
    mp4 = entry_for(entries, "mp4")
    at_ms = data["StartPos"] + (data.get("StartTime") or 0)
    live_path = data["LivePath"].strip("/")
    bucket, root, region = destination_bucket(data, mp4)
    width = data["Width"] or 0  # 0: the source's width (absent)
    s3_dir, name = split_key(data["ExportS3Key"], IMAGE_SUFFIXES, DEFAULT_NAME)
    if s3_dir is None:
        s3_dir = _default_dir(user, source, live_path, at_ms, width, secret)
    return ExportSpec(
        user=user,
        source=source,
        live_path=live_path,
        start_ms=at_ms,
        duration_ms=1,  # the instant
        export_type=ExportType.COPY,
        destination=S3Location(
            bucket=bucket, region=region or default_region, prefix="/".join(p for p in (root, s3_dir) if p)
        ),
        video_name=image_name(name),
        rendition=data["Rendition"].strip(),
        snapshot_ms=at_ms,
        snapshot_width=width,
    )


def validated_snapshot(body: dict[str, Any], session: Session) -> ExportSpec:
    spec = spec_for_caller(services(), session, SnapshotRequestSchema().load(body), build_snapshot_spec)
    require_export_scopes(session, spec)
    return spec


@bp.post("/resource/v1/i/snapshot")
def snapshot() -> tuple[Response, int]:
    svc = services()
    body, session = authenticated_body(MAX_BODY_BYTES)
    spec = validated_snapshot(body, session)
    return admitted_answer(svc, spec)
