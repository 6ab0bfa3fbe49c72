"""A playlist's segment list packed for the index: one zlib stream of compact JSON lines.

Consecutive entries share most of their text (the folder, the duration, a start that follows on
from the previous end), so an hourly playlist of 2 s segments packs to ~10 KB. Packing streams
(the whole list is never held), and stops at a size limit so one huge playlist cannot take an
unbounded share of Redis: it is then streamed from S3 when needed instead.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator

from workers.archive.model import ByteRange, Segment

CHUNK = 64 * 1024


def _range(value: ByteRange | None) -> list[int] | None:
    return None if value is None else [value.start, value.length]


class SegmentPacker:
    """Packs segments as they stream past; `result()` is None once the limit is passed."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self._compressor = zlib.compressobj(6)
        self._parts: list[bytes] | None = [] if limit_bytes > 0 else None
        self._size = 0
        self._previous_end: float | None = None

    def add(self, segment: Segment) -> None:
        if self._parts is None:
            return
        follows = self._previous_end is not None and segment.start_ms == self._previous_end
        self._previous_end = segment.end_ms
        row = [
            None if follows else segment.start_ms,
            segment.duration_ms,
            int(segment.discontinuity),
            segment.key,
            _range(segment.byte_range),
            segment.init_key,
            _range(segment.init_range),
            segment.refused,
            segment.aes_key,
            None if segment.aes_iv is None else segment.aes_iv.hex(),
        ]
        self._append(self._compressor.compress(json.dumps(row, separators=(",", ":")).encode() + b"\n"))

    def _append(self, data: bytes) -> None:
        if self._parts is None or not data:
            return
        self._parts.append(data)
        self._size += len(data)
        if self._size > self.limit:
            self._parts = None  # over the limit: give up the cache entry, keep bounded memory

    def result(self) -> bytes | None:
        self._append(self._compressor.flush())
        return None if self._parts is None else b"".join(self._parts)


def unpack(blob: bytes, playlist: str, after_ms: float = float("-inf")) -> Iterator[Segment]:
    """The packed segments, in playlist order, decompressed a chunk at a time. With `after_ms`,
    only those ending after it: the others are passed over without building a Segment (a
    recording-spans page deep in a long playlist pays their rows' parse, not their objects)."""
    decompressor = zlib.decompressobj()
    previous_end = 0.0
    pending = b""
    for offset in range(0, len(blob), CHUNK):
        pending += decompressor.decompress(blob[offset : offset + CHUNK])
        *lines, pending = pending.split(b"\n")
        for line in lines:
            row = json.loads(line)
            if after_ms > float("-inf") and (end := _row_end(row, previous_end)) <= after_ms:
                previous_end = end
                continue
            segment = _segment(row, playlist, previous_end)
            previous_end = segment.end_ms
            yield segment
    pending += decompressor.flush()
    if pending.strip():
        raise ValueError("packed segment list is truncated")


def _row_end(row: object, previous_end: float) -> float:
    """Where a packed row's entry ends, without building it; ValueError for a damaged row."""
    if not isinstance(row, list) or len(row) < 2:
        raise ValueError("packed segment row is damaged")
    start, duration = row[0], row[1]
    return (previous_end if start is None else float(start)) + float(duration)


def _segment(row: list[object], playlist: str, previous_end: float) -> Segment:
    start, duration, discontinuity, key, byte_range, init_key, init_range, refused, aes_key, aes_iv = row
    return Segment(
        key=str(key),
        start_ms=previous_end if start is None else float(start),  # type: ignore[arg-type]
        duration_ms=float(duration),  # type: ignore[arg-type]
        discontinuity=bool(discontinuity),
        playlist=playlist,
        byte_range=ByteRange(*byte_range) if isinstance(byte_range, list) else None,
        init_key=None if init_key is None else str(init_key),
        init_range=ByteRange(*init_range) if isinstance(init_range, list) else None,
        refused=str(refused),
        aes_key=None if aes_key is None else str(aes_key),
        aes_iv=None if aes_iv is None else bytes.fromhex(str(aes_iv)),
    )
