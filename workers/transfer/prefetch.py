"""Segments downloaded ahead, in parallel, while earlier ones are being remuxed.

Only `ahead` segments are on disk at once, so disk use is flat in clip length; each file is
deleted as soon as the consumer moves past it, also when it stops early or fails.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tasks.jobs import S3Location
from tasks.storage import ObjectNotFound, ObjectStore, TooLarge
from workers.archive.playlists import Segment
from workers.media.timeline import SegmentInput, open_segment

MAX_SEGMENT_BYTES = 2 * 1024**3  # an HLS segment is seconds of video; gigabytes is hostile


def prefetch(
    store: ObjectStore,
    source: S3Location,
    segments: list[Segment],
    workdir: Path,
    ahead: int,
) -> Generator[SegmentInput, None, None]:
    """Yield each segment, in order, once its bytes are on local disk and it is opened (probing
    overlaps the muxing of earlier segments), or with why it could not be read."""
    pending: deque[tuple[Segment, Path, Future[SegmentInput]]] = deque()
    queue = iter(enumerate(segments))
    with ThreadPoolExecutor(max_workers=max(1, ahead), thread_name_prefix="prefetch") as pool:

        def submit_next() -> None:
            for index, segment in queue:
                path = workdir / f"segment-{index:06d}.ts"
                future = pool.submit(_fetch, store, source, segment, path, index == 0)
                pending.append((segment, path, future))
                return

        try:
            for _ in range(max(1, ahead)):
                submit_next()
            while pending:
                segment, path, future = pending.popleft()
                item: SegmentInput | None = None
                try:
                    item = future.result()
                    yield item
                except ObjectNotFound:
                    yield SegmentInput(segment, None, "missing from storage")
                except TooLarge as exc:
                    yield SegmentInput(segment, None, str(exc))
                finally:
                    if item is not None and item.container is not None:
                        item.container.close()
                    path.unlink(missing_ok=True)
                submit_next()
        finally:
            for _, _path, future in pending:
                future.cancel()
            for _, path, future in pending:
                if not future.cancelled() and future.exception() is None:
                    opened = future.result().container  # wait: the file is complete before removal
                    if opened is not None:
                        opened.close()
                path.unlink(missing_ok=True)


def _fetch(store: ObjectStore, source: S3Location, segment: Segment, path: Path, first: bool) -> SegmentInput:
    if segment.refused:
        return SegmentInput(segment, None, segment.refused)
    store.download(source.bucket, segment.key, path, MAX_SEGMENT_BYTES, source.region)
    return SegmentInput(segment, path, container=open_segment(path, first))
