"""Uploading an MP4 while it is being written, so upload time hides behind muxing.

The muxer writes ftyp, mdat (growing) and, at the end, moov. Media bytes past the first
`hold` bytes never change once written, so a background thread ships them as multipart parts
2..N as soon as a part's worth is on disk. At the end, part 1 is built from ftyp, the moov with
its chunk offsets shifted, and the held-back start of mdat: the object in S3 is a faststart MP4
(moov first), with no second pass over the file. Parts can complete in any order; S3 orders
them by number. Any failure aborts the multipart upload, so no half object is ever visible.

Only this upload's own UploadId is ever aborted here: uploads other attempts of the same job left
on the key are theirs, and a later attempt aborts them by the ids recorded on the job record.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from tasks.storage import MultipartUpload, ObjectStore, Uploaded, WriteCondition
from workers.media.mp4_boxes import Box, shift_chunk_offsets, top_level_boxes

log = logging.getLogger(__name__)

MIB = 1024 * 1024
HOLD_BYTES = 6 * MIB  # part 1 must reach S3's 5 MiB minimum once ftyp and moov join it
POLL_S = 0.05


class StreamingMp4Upload:
    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        key: str,
        region: str,
        path: Path,
        part_bytes: int,
        concurrency: int,
        hold_bytes: int = HOLD_BYTES,
        metadata: dict[str, str] | None = None,
        on_started: Callable[[str], None] | None = None,
    ) -> None:
        """`on_started(upload_id)` runs before any part is sent: the job records the id there (and
        refuses, raising, when this attempt no longer holds the job)."""
        self.store, self.bucket, self.key, self.region, self.path = store, bucket, key, region, path
        self.part_bytes = max(part_bytes, 5 * MIB)
        self.hold_bytes = max(hold_bytes, 5 * MIB + 64 * 1024)
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="upload")
        self._futures: list[Future[None]] = []
        self._next_offset = self.hold_bytes
        self._next_part = 2
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="upload-watch", daemon=True)
        self._upload: MultipartUpload | None = None
        self._metadata, self._on_started = metadata, on_started

    def __enter__(self) -> StreamingMp4Upload:
        self._upload = self.store.start_multipart(
            self.bucket, self.key, "video/mp4", self.region, metadata=self._metadata
        )
        if self._on_started is not None:
            try:
                self._on_started(self._upload.upload_id)
            except BaseException:
                self._upload.abort()
                self._upload = None
                self._pool.shutdown(wait=False)
                raise
        self._watcher.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._halt()
        # Parts still in flight finish (or fail) first: S3 may keep a part that lands after the
        # abort, so the abort comes last. An aborted upload can never be completed either way.
        self._pool.shutdown(wait=True, cancel_futures=True)
        if kind is not None and self._upload is not None:
            self._upload.abort()
            self._upload = None

    def _halt(self) -> None:
        self._stop.set()
        if self._watcher.is_alive():
            self._watcher.join()

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                continue
            while self._next_offset + self.part_bytes <= size:
                self._ship(self._next_offset, self._next_offset + self.part_bytes)

    def _ship(self, start: int, end: int) -> None:
        number = self._next_part
        self._next_part += 1
        self._next_offset = end
        self._futures.append(self._pool.submit(self._upload_range, number, start, end))

    def _upload_range(self, number: int, start: int, end: int) -> None:
        assert self._upload is not None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, end - start, start)
        finally:
            os.close(fd)
        self._upload.upload_part(number, data)

    def finish(
        self, before_complete: Callable[[], None] | None = None, condition: WriteCondition | None = None
    ) -> Uploaded:
        """Call once the muxer has closed the file: ship the rest, then part 1, then complete.
        `before_complete` runs once every part is up, right before CompleteMultipartUpload, which
        carries `condition` (S3 refuses it when the key changed since the writer looked)."""
        self._halt()
        assert self._upload is not None
        boxes = top_level_boxes(self.path)
        kinds = [b.kind for b in boxes]
        if kinds[0] != b"ftyp" or kinds[-1] != b"moov" or b"mdat" not in kinds:
            raise ValueError(f"unexpected MP4 layout {kinds}")
        ftyp, moov = boxes[0], boxes[-1]
        media_end = moov.offset
        while self._next_offset < media_end:
            self._ship(self._next_offset, min(self._next_offset + self.part_bytes, media_end))
        head = self._head_part(ftyp, moov, min(self.hold_bytes, media_end))
        self._futures.append(self._pool.submit(self._upload.upload_part, 1, head))
        for future in self._futures:
            future.result()
        if before_complete is not None:
            before_complete()
        uploaded = self._upload.complete(condition)
        self._upload = None
        return uploaded

    def _head_part(self, ftyp: Box, moov: Box, held_end: int) -> bytes:
        with self.path.open("rb") as handle:
            handle.seek(moov.offset)
            moov_bytes = bytearray(handle.read(moov.size))
            shift_chunk_offsets(moov_bytes, moov.size)
            handle.seek(0)
            ftyp_bytes = handle.read(ftyp.end)
            held = handle.read(held_end - ftyp.end)
        return ftyp_bytes + bytes(moov_bytes) + held
