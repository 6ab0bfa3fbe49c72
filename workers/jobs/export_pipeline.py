"""One export from start to finish, as a plain function: index, fetch, cut, thumbnail, upload.

Runs without Celery, so tests and the benchmark call it directly. Temporary files live in a
directory of their own that is removed on every path out.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tasks.exports.spec import ErrorCode, ExportResult, ExportSpec, ExportType
from tasks.platform.settings import Settings
from tasks.storage import (
    AccessDenied,
    NoSuchBucket,
    ObjectArchived,
    ObjectStore,
    StorageError,
    Uploaded,
    WriteCondition,
    WriteConflict,
)
from tasks.tenancy import ownership
from workers.archive.playlists import LEADING_MS, Segment
from workers.archive.ranges import segments_for_range
from workers.archive.spans import coverage_note
from workers.errors import ExportError, NoMedia
from workers.jobs.archived import restore_first
from workers.jobs.completion import last_look, refused_write, upload_jpeg
from workers.jobs.fencing import Fence, adopted, completion_failed, object_mark, take_over
from workers.jobs.snapshot import run_snapshot
from workers.jobs.strategies import SpliceRejected, Strategy, with_strategies
from workers.media.mp4_boxes import LayoutError
from workers.media.mp4_writer import faststart_copy
from workers.media.remux import ClipStats, remux
from workers.media.thumbnail import first_frame_jpeg
from workers.media.transcode import transcode
from workers.media.verify import decodes_cleanly
from workers.transfer.file_upload import upload_file_in_parts
from workers.transfer.prefetch import prefetch
from workers.transfer.streaming_upload import StreamingMp4Upload

log = logging.getLogger(__name__)

Report = Callable[[str, float], None]
Indexed = Callable[[list[Segment]], list[Segment]]


def covered_seconds(spec: ExportSpec, segments: list[Segment]) -> float:
    """How much of the range the segments cover, by their playlist durations."""
    return sum(max(0.0, min(s.end_ms, spec.end_ms) - max(s.start_ms, spec.start_ms)) for s in segments) / 1e3


def _no_report(step: str, fraction: float) -> None:
    return None


def cut_clip(
    spec: ExportSpec,
    store: ObjectStore,
    settings: Settings,
    segments: list[Segment],
    out: Path,
    report: Report,
    strategy: Strategy,
) -> ClipStats:
    """Fetch and cut the range into `out`, an MP4 with its moov last (see StreamingMp4Upload).

    Raises ParametersChanged (a copy one track cannot carry) and SpliceRejected: the strategy is
    the caller's to change, because the upload streaming `out` belongs to this one."""
    inputs = prefetch(store, spec.source, segments, out.parent, settings.prefetch_segments)
    try:
        if strategy.export_type is ExportType.COPY:
            stats = remux(
                inputs,
                spec.start_ms,
                spec.end_ms,
                out,
                edit_list=settings.copy_edit_list,
                on_progress=lambda f: report("remuxing", 0.05 + 0.8 * f),
                faststart=False,
            )
        else:
            stats = transcode(
                inputs,
                spec.start_ms,
                spec.end_ms,
                out,
                strategy.export_type,
                settings,
                on_progress=lambda f: report("encoding", 0.05 + 0.8 * f),
                faststart=False,
                allow_smart_cut=strategy.smart_cut,
            )
    except ObjectArchived as exc:
        raise restore_first(store, spec, segments) from exc
    except AccessDenied as exc:
        raise ExportError(ErrorCode.FAILED, f"the service may not read the recording: {exc}") from exc
    finally:
        inputs.close()
    if stats.spliced and not decodes_cleanly(out, stats.video_frames):
        raise SpliceRejected(f"{spec.video_key} does not decode frame for frame")
    return stats


def upload_poster(store: ObjectStore, spec: ExportSpec, clip: Path, fence: Fence, mark: str = "") -> Uploaded:
    """The clip's first frame, as a JPEG beside the video: recorded, fenced, owned and completed
    on the condition that the key still holds what this attempt saw (completion.upload_jpeg)."""
    return upload_jpeg(store, spec, first_frame_jpeg(clip), fence, mark)


@dataclass(frozen=True)
class Destination:
    """Where and how this attempt writes the video: fixed once, before any byte is written."""

    bucket: str
    key: str
    region: str
    metadata: dict[str, str]
    mark: str
    condition: WriteCondition | None  # what the key held when the attempt looked


def cut_and_upload(
    spec: ExportSpec,
    store: ObjectStore,
    settings: Settings,
    segments: list[Segment],
    clip: Path,
    report: Report,
    smart_cut: bool,
    fence: Fence,
) -> tuple[ClipStats, Uploaded, Uploaded | None]:
    """Cut while the upload streams; the poster frame goes up beside the video's last parts and
    is in place before the video completes. An audio-only clip has no poster (ImagePath "").

    Each strategy gets an upload of its own: a copy that turns into a re-encode aborts the upload
    that streamed the copy and begins (and records on the job) a new one for the re-encode."""
    dest = spec.destination
    take_over(fence, store)
    # One look at the video key is both what its completion must still find (the write condition)
    # and what the ownership check judges: a writer landing after it makes the completion refused.
    video_now = store.look(dest.bucket, spec.video_key, dest.region)
    condition = store.write_condition(video_now)
    if (refused := ownership.export_refusal(store, spec, {spec.video_key: video_now})) is not None:
        raise ExportError(ErrorCode.AUTH, refused)  # before any byte is written
    mark = object_mark(fence, [s.key for s in segments])
    metadata = {**ownership.export_writer(spec).metadata, ownership.JOB_META: mark}
    target = Destination(dest.bucket, spec.video_key, dest.region, metadata, mark, condition)
    first = Strategy(spec.export_type, smart_cut)
    earlier = adopted(fence, store, dest.bucket, spec.video_key, dest.region, mark)
    if earlier is not None:  # an earlier attempt completed the video before it was fenced off

        def cut_only(strategy: Strategy) -> ClipStats:  # for stats and poster
            return cut_clip(spec, store, settings, segments, clip, report, strategy)

        stats = with_strategies(first, clip, cut_only, spec.video_key)
        report("uploading", 0.88)
        poster = upload_poster(store, spec, clip, fence, mark) if stats.video_frames else None
        return stats, earlier, poster

    def streamed(strategy: Strategy) -> tuple[ClipStats, Uploaded, Uploaded | None]:
        return stream_clip(spec, store, settings, segments, clip, report, strategy, fence, target)

    return with_strategies(first, clip, streamed, spec.video_key)


def stream_clip(
    spec: ExportSpec,
    store: ObjectStore,
    settings: Settings,
    segments: list[Segment],
    clip: Path,
    report: Report,
    strategy: Strategy,
    fence: Fence,
    target: Destination,
) -> tuple[ClipStats, Uploaded, Uploaded | None]:
    """One strategy's clip, cut into `clip` while a multipart upload of its own streams it. Any
    exception out of the cut (ParametersChanged included) aborts that upload before it leaves."""

    def record(upload_id: str) -> None:
        fence.record_upload(target.bucket, target.key, target.region, upload_id)

    try:
        with StreamingMp4Upload(
            store,
            target.bucket,
            target.key,
            target.region,
            clip,
            settings.upload_part_mib * 1024 * 1024,
            settings.upload_concurrency,
            metadata=target.metadata,
            on_started=record,
        ) as upload:
            stats = cut_clip(spec, store, settings, segments, clip, report, strategy)
            report("uploading", 0.88)
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="poster") as side:
                pending = (
                    side.submit(upload_poster, store, spec, clip, fence, target.mark)
                    if stats.video_frames
                    else None
                )

                def poster_then_fence() -> None:
                    if pending is not None:
                        pending.result()
                    last_look(store, spec, fence)

                try:
                    uploaded = upload.finish(before_complete=poster_then_fence, condition=target.condition)
                except WriteConflict:
                    uploaded = refused_write(
                        fence, store, target.bucket, target.key, target.region, target.mark
                    )
                except StorageError:
                    completion_failed(fence)  # aborted by a newer attempt: LeaseLost
                    raise
                poster_uploaded = pending.result() if pending is not None else None
    except LayoutError:  # >4 GB with 32-bit chunk offsets: re-lay it out locally instead
        relaid = clip.with_name("clip-faststart.mp4")
        faststart_copy(clip, relaid)
        poster_uploaded = upload_poster(store, spec, clip, fence, target.mark) if stats.video_frames else None
        try:  # recorded on the job and completed under the fence, like the streamed upload
            uploaded = upload_file_in_parts(
                store,
                target.bucket,
                target.key,
                target.region,
                relaid,
                "video/mp4",
                settings.upload_part_mib * 1024 * 1024,
                settings.upload_concurrency,
                target.metadata,
                on_started=record,
                before_complete=lambda: last_look(store, spec, fence),
                condition=target.condition,
            )
        except WriteConflict:
            uploaded = refused_write(fence, store, target.bucket, target.key, target.region, target.mark)
        except StorageError:
            completion_failed(fence)  # aborted by a newer attempt: LeaseLost
            raise
    return stats, uploaded, poster_uploaded


def run_export(
    spec: ExportSpec,
    store: ObjectStore,
    settings: Settings,
    report: Report = _no_report,
    *,
    fence: Fence,
    indexed: Indexed = lambda segments: segments,
) -> ExportResult:
    """Cut and upload one export. `indexed` sees the segments the lookup found and returns the
    ones to cut: a job pins its first attempt's view of a live recording there. A snapshot job
    (spec.snapshot_ms set) is the same job with other work: workers/jobs/snapshot.py."""
    try:
        if spec.snapshot_ms is not None:
            return run_snapshot(spec, store, settings, report, fence, indexed)
        return _run_export(spec, store, settings, report, fence, indexed)
    except NoMedia as exc:
        if exc.located:
            raise
        raise NoMedia(exc.message + near(store, spec), located=True) from exc
    except NoSuchBucket as exc:  # the request named a bucket that does not exist: its fault, not ours
        role = "storage_info's ts entry" if exc.bucket == spec.source.bucket else "the destination"
        raise ExportError(
            ErrorCode.BAD_REQUEST, f"bad request: {role}: bucket {exc.bucket!r} does not exist"
        ) from exc


def near(store: ObjectStore, spec: ExportSpec) -> str:
    """What the recording covers near the range (a snapshot's instant), for the "no media"
    answer; a failure to say it leaves the answer as it was."""
    start, end = (
        (spec.start_ms, spec.end_ms) if spec.snapshot_ms is None else (spec.snapshot_ms, spec.snapshot_ms + 1)
    )
    try:
        return coverage_note(store, spec.source, spec.live_path, start, end)
    except Exception:  # a hint, never a reason to fail differently
        log.warning("no coverage note for a no-media answer", exc_info=True)
        return ""


def _run_export(
    spec: ExportSpec,
    store: ObjectStore,
    settings: Settings,
    report: Report,
    fence: Fence,
    indexed: Indexed,
) -> ExportResult:
    report("indexing", 0.0)
    segments = indexed(
        segments_for_range(
            store,
            spec.source,
            spec.live_path,
            spec.start_ms,
            spec.end_ms,
            rendition=spec.rendition,
            leading_ms=LEADING_MS,  # the next segment may hold the range's last pictures
        )
    )
    if not segments:
        raise NoMedia(
            f"no recording under {spec.live_path!r} covers the requested range{near(store, spec)}",
            located=True,
        )
    workdir = Path(tempfile.mkdtemp(prefix=f"export-{spec.job_id[:12]}-", dir=settings.work_dir or None))
    dest = spec.destination
    clip = workdir / "clip.mp4"
    try:
        smart_cut = settings.smart_cut and spec.needs_encoding
        stats, uploaded, poster = cut_and_upload(
            spec, store, settings, segments, clip, report, smart_cut, fence
        )
        exported_ms = round(stats.covered_ms)
        return ExportResult(
            bucket=dest.bucket,
            region=dest.region,
            s3_dir=dest.prefix,
            video_key=spec.video_key,
            image_key=spec.image_key if stats.video_frames else "",
            version=uploaded.version,
            exported_ms=exported_ms,
            lack_ms=max(0, spec.duration_ms - exported_ms),
            size_bytes=clip.stat().st_size,
            codec=stats.video_codec,
            video_version_id=uploaded.version_id or "",
            image_version_id=(poster.version_id or "") if poster is not None else "",
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
