"""Segments downloaded ahead, in parallel, while earlier ones are being remuxed.

Only `ahead` segments are on disk at once, so disk use is flat in clip length; each file is
deleted as soon as the consumer moves past it, also when it stops early or fails.

A playlist entry with #EXT-X-BYTERANGE is read with a ranged GET of exactly its bytes, so a
single-file recording (ffmpeg's single_file) has each of its bytes read once, never the whole
object per entry. An fMP4/CMAF entry is written behind its initialization section (#EXT-X-MAP,
itself possibly a byte range) into one local file, which is what a demuxer can open; the
initialization sections are fetched once per export and kept in memory (they are a few KB).

An AES-128 entry (#EXT-X-KEY) is downloaded as stored and decrypted chunk by chunk into the file
the demuxer opens (workers/transfer/aes.py): never whole in memory. Each key object is fetched
once per export (however many entries and threads use it) and never logged; a key that is
missing, not 16 bytes, or does not decrypt the entry makes that entry a gap with the reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from threading import Lock

from tasks.exports.spec import S3Location
from tasks.storage import ObjectNotFound, ObjectStore, RefusedObject, TooLarge
from tasks.tenancy.ownership import JOB_META
from workers.archive.playlists import ByteRange, Segment
from workers.media.timeline import SegmentInput, open_segment
from workers.transfer.aes import KEY_BYTES, UndecryptableSegment, decrypt_file

MAX_SEGMENT_BYTES = 2 * 1024**3  # an HLS segment is seconds of video; gigabytes is hostile
MAX_INIT_BYTES = 1024 * 1024  # an fMP4 initialization section is a moov without samples: KBs
# Recorders write segments; this service writes exports, each marked with the job that wrote it
# (a metadata name no recorder uses). An object so marked where a playlist names a segment is
# another user's export put there (at a name the recording lacks) to be spliced into this one:
# it is a gap, never media.
NOT_A_RECORDING = JOB_META


class InitSections:
    """Small objects (initialization sections, AES keys) by (key, byte range), each fetched once
    however many segments (and prefetch threads) need it; larger than `max_bytes` is refused."""

    def __init__(self, store: ObjectStore, source: S3Location, max_bytes: int = MAX_INIT_BYTES) -> None:
        self.store, self.source, self.max_bytes = store, source, max_bytes
        self._lock = Lock()
        self._known: dict[tuple[str, ByteRange | None], Future[bytes]] = {}

    def get(self, key: str, byte_range: ByteRange | None) -> bytes:
        with self._lock:
            future = self._known.get((key, byte_range))
            owner = future is None
            if future is None:
                future = self._known[(key, byte_range)] = Future()
        if owner:
            try:
                span = (byte_range.start, byte_range.end) if byte_range else None
                data = self.store.get_bytes(
                    self.source.bucket, key, self.max_bytes, self.source.region, span, NOT_A_RECORDING
                )
                if len(data) > self.max_bytes:
                    raise TooLarge(f"{key} is larger than {self.max_bytes} bytes")
                future.set_result(data)
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()


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
    inits = InitSections(store, source)
    keys = InitSections(store, source, KEY_BYTES)
    with ThreadPoolExecutor(max_workers=max(1, ahead), thread_name_prefix="prefetch") as pool:

        def submit_next() -> None:
            for index, segment in queue:
                suffix = ".mp4" if segment.init_key else ".ts"
                path = workdir / f"segment-{index:06d}{suffix}"
                future = pool.submit(_fetch, store, source, segment, path, index == 0, (inits, keys))
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
                except RefusedObject:
                    yield SegmentInput(segment, None, "an export's output, not a recorder's segment")
                except UndecryptableSegment as exc:
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


def _fetch(
    store: ObjectStore,
    source: S3Location,
    segment: Segment,
    path: Path,
    first: bool,
    small: tuple[InitSections, InitSections],
) -> SegmentInput:
    if segment.refused:
        return SegmentInput(segment, None, segment.refused)
    inits, keys = small
    if segment.aes_key is not None and segment.aes_iv is not None:
        key = _aes_key(keys, segment.aes_key)
        encrypted = path.with_suffix(".encrypted")
        try:
            _download(store, source, segment, encrypted)
            decrypt_file(encrypted, path, key, segment.aes_iv)
        finally:
            encrypted.unlink(missing_ok=True)
        return SegmentInput(segment, path, container=open_segment(path, first))
    append = False
    if segment.init_key is not None:
        path.write_bytes(inits.get(segment.init_key, segment.init_range))
        append = True
    _download(store, source, segment, path, append)
    return SegmentInput(segment, path, container=open_segment(path, first))


def _aes_key(keys: InitSections, key: str) -> bytes:
    """The key object's 16 bytes, or why the entries it encrypts are a gap (never its bytes)."""
    try:
        return keys.get(key, None)
    except ObjectNotFound as exc:
        raise UndecryptableSegment("its AES-128 key object is missing from storage") from exc
    except TooLarge as exc:
        raise UndecryptableSegment("its AES-128 key object is not 16 bytes") from exc
    except RefusedObject as exc:
        raise UndecryptableSegment("its AES-128 key object is an export's output") from exc


def _download(
    store: ObjectStore, source: S3Location, segment: Segment, path: Path, append: bool = False
) -> None:
    span = (segment.byte_range.start, segment.byte_range.end) if segment.byte_range else None
    store.download(
        source.bucket,
        segment.key,
        path,
        MAX_SEGMENT_BYTES,
        source.region,
        byte_range=span,
        append=append,
        refuse_meta=NOT_A_RECORDING,
    )
