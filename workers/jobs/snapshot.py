"""A snapshot job: the JPEG of the picture on screen at one instant, uploaded like an export's
image (owned, claimed, completed under the job's fence, version-pinned).

It is an export job of the same store (ExportSpec.snapshot_ms set), so admission, claims,
fencing, long polling and answers are the export's; only the work differs: the segment holding
the instant (and the one before, where its GOP starts there) is fetched, at most one GOP is
decoded, and no video is written.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from tasks.exports.spec import ErrorCode, ExportResult, ExportSpec
from tasks.platform.settings import Settings
from tasks.storage import ObjectArchived, ObjectStore
from tasks.tenancy import ownership
from workers.archive.model import Segment
from workers.archive.ranges import segments_for_range
from workers.archive.spans import coverage_note
from workers.errors import ExportError, NoMedia
from workers.jobs.archived import restore_first
from workers.jobs.completion import upload_jpeg
from workers.jobs.fencing import Fence, object_mark, take_over
from workers.media.still import NoPicture, TimedPacket, picture_at, scaled, timeline_packets
from workers.media.thumbnail import encode_jpeg
from workers.transfer.prefetch import prefetch

log = logging.getLogger(__name__)

LOOKBACK_MS = 12_000  # a segment before the instant is read only when its GOP starts there

Report = Callable[[str, float], None]
Indexed = Callable[[list[Segment]], list[Segment]]


def holding(segments: list[Segment], at_ms: float) -> list[Segment]:
    """The segment whose span holds the instant, and the one before it (its GOP may start
    there); the latest-starting segment wins where two playlists overlap."""
    readable = sorted((s for s in segments if not s.refused), key=lambda s: (s.start_ms, s.key))
    inside = [i for i, s in enumerate(readable) if s.start_ms <= at_ms < s.end_ms]
    if not inside:
        return []
    index = inside[-1]
    return readable[max(0, index - 1) : index + 1]


def read_packets(
    store: ObjectStore, spec: ExportSpec, chosen: list[Segment], workdir: Path
) -> list[TimedPacket]:
    """The chosen segments' video packets on the timeline. The segment holding the instant must
    give some (NoMedia otherwise: missing from storage, undecodable, no video): the picture the
    segment before it ends on is no longer on screen there. Segments in archival storage raise
    SegmentsArchived, so the job restores them as an export would (ErrorCode 8)."""
    holder, packets, held, why = chosen[-1].identity, [], False, "no video in it"
    try:
        for item in prefetch(store, spec.source, chosen, workdir, 2):
            got = timeline_packets(item.segment, item.container) if item.container is not None else []
            packets += got
            if item.segment.identity == holder:
                held, why = bool(got), item.reason or why
    except ObjectArchived as exc:
        raise restore_first(store, spec, chosen) from exc
    if not held:
        raise NoMedia(f"no picture at the instant: the segment holding it cannot be read ({why})")
    return packets


def still_jpeg(spec: ExportSpec, packets: list[TimedPacket], at_ms: int) -> bytes:
    try:
        frame, decoded = picture_at(packets, at_ms)
    except NoPicture as exc:
        raise NoMedia(f"no picture on screen at {at_ms} under {spec.live_path!r}: {exc}") from exc
    log.info("snapshot decoded", extra={"packets": decoded, "key": spec.image_key})
    return encode_jpeg(scaled(frame, spec.snapshot_width))


def run_snapshot(
    spec: ExportSpec,
    store: ObjectStore,
    settings: Settings,
    report: Report,
    fence: Fence,
    indexed: Indexed = lambda segments: segments,
) -> ExportResult:
    """Find, decode and upload the still at spec.snapshot_ms; NoMedia when no picture is there."""
    at_ms = spec.snapshot_ms if spec.snapshot_ms is not None else spec.start_ms
    report("indexing", 0.0)
    found = indexed(
        segments_for_range(
            store, spec.source, spec.live_path, at_ms - LOOKBACK_MS, at_ms + 1, rendition=spec.rendition
        )
    )
    chosen = holding(found, at_ms)
    if not chosen:
        note = coverage_note(store, spec.source, spec.live_path, at_ms, at_ms + 1)
        raise NoMedia(f"no recording under {spec.live_path!r} has a picture at {at_ms}{note}", located=True)
    take_over(fence, store)
    if (refused := ownership.export_refusal(store, spec)) is not None:
        raise ExportError(ErrorCode.AUTH, refused)
    workdir = Path(tempfile.mkdtemp(prefix=f"snapshot-{spec.job_id[:12]}-", dir=settings.work_dir or None))
    try:
        report("decoding", 0.3)
        jpeg = still_jpeg(spec, read_packets(store, spec, chosen, workdir), at_ms)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report("uploading", 0.8)
    mark = object_mark(fence, [s.key for s in chosen] + [f"@{at_ms}/{spec.snapshot_width}"])
    uploaded = upload_jpeg(store, spec, jpeg, fence, mark)
    dest = spec.destination
    return ExportResult(
        bucket=dest.bucket,
        region=dest.region,
        s3_dir=dest.prefix,
        video_key="",
        image_key=spec.image_key,
        version=uploaded.version,
        exported_ms=0,
        lack_ms=0,
        size_bytes=len(jpeg),
        codec="mjpeg",
        image_version_id=uploaded.version_id or "",
    )
