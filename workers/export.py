"""One export from start to finish, as a plain function: index, fetch, cut, thumbnail, upload.

Runs without Celery, so tests and the benchmark call it directly. Temporary files live in a
directory of their own that is removed on every path out.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from tasks.jobs import ExportResult, ExportSpec, ExportType
from tasks.settings import Settings
from tasks.storage import ObjectArchived, ObjectNotFound, ObjectStore
from workers.archive import segments_for_range
from workers.errors import NoMedia, SegmentsArchived
from workers.hls import Segment
from workers.prefetch import prefetch
from workers.remux import ClipStats, remux
from workers.thumbnail import first_frame_jpeg

Report = Callable[[str, float], None]


def _no_report(step: str, fraction: float) -> None:
    return None


def archived_keys(store: ObjectStore, spec: ExportSpec, segments: list[Segment]) -> list[str]:
    """The range's segments that sit in archival storage and are not restored."""
    keys: list[str] = []
    for segment in segments:
        try:
            if store.head(spec.source.bucket, segment.key, spec.source.region).archived:
                keys.append(segment.key)
        except ObjectNotFound:
            continue
    return keys


def cut_clip(
    spec: ExportSpec,
    store: ObjectStore,
    settings: Settings,
    segments: list[Segment],
    workdir: Path,
    report: Report,
) -> tuple[Path, ClipStats]:
    """Fetch and cut the range into workdir/clip.mp4."""
    out = workdir / "clip.mp4"
    inputs = prefetch(store, spec.source, segments, workdir, settings.prefetch_segments)
    try:
        if spec.export_type is ExportType.COPY:
            stats = remux(
                inputs,
                spec.start_ms,
                spec.end_ms,
                out,
                on_progress=lambda f: report("remuxing", 0.05 + 0.8 * f),
            )
        else:
            from workers.transcode import transcode

            stats = transcode(
                inputs,
                spec.start_ms,
                spec.end_ms,
                out,
                spec.export_type,
                settings,
                on_progress=lambda f: report("encoding", 0.05 + 0.8 * f),
            )
    except ObjectArchived as exc:
        raise SegmentsArchived(archived_keys(store, spec, segments)) from exc
    finally:
        inputs.close()
    return out, stats


def run_export(
    spec: ExportSpec, store: ObjectStore, settings: Settings, report: Report = _no_report
) -> ExportResult:
    report("indexing", 0.0)
    segments = segments_for_range(store, spec.source, spec.live_path, spec.start_ms, spec.end_ms)
    if not segments:
        raise NoMedia(f"no recording under {spec.live_path!r} covers the requested range")
    workdir = Path(tempfile.mkdtemp(prefix=f"export-{spec.job_id[:12]}-", dir=settings.work_dir or None))
    try:
        clip, stats = cut_clip(spec, store, settings, segments, workdir, report)
        report("thumbnail", 0.86)
        jpeg = first_frame_jpeg(clip)
        report("uploading", 0.88)
        dest = spec.destination
        store.put_bytes(dest.bucket, spec.image_key, jpeg, "image/jpeg", region=dest.region)
        uploaded = store.upload_file(clip, dest.bucket, spec.video_key, "video/mp4", dest.region)
        exported_ms = round(stats.covered_ms)
        return ExportResult(
            bucket=dest.bucket,
            region=dest.region,
            s3_dir=dest.prefix,
            video_key=spec.video_key,
            image_key=spec.image_key,
            version=uploaded.version,
            exported_ms=exported_ms,
            lack_ms=max(0, spec.duration_ms - exported_ms),
            size_bytes=clip.stat().st_size,
            codec=stats.video_codec,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
