"""Reading an MP4's top-level boxes and moving its moov in front of mdat.

Moving moov forward shifts every media byte by the moov's size, so the chunk offset tables
(stco, co64) inside it are shifted by the same amount. That is all `faststart` does; doing it
here lets the media bytes be uploaded while they are still being written.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}  # boxes on the way to stco/co64


class LayoutError(ValueError):
    pass


@dataclass(frozen=True)
class Box:
    kind: bytes
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


def top_level_boxes(path: Path) -> list[Box]:
    boxes: list[Box] = []
    total = path.stat().st_size
    with path.open("rb") as handle:
        offset = 0
        while offset < total:
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                raise LayoutError("truncated box header")
            size, kind = struct.unpack(">I4s", header[:8])
            if size == 1:
                size = struct.unpack(">Q", header[8:16])[0]
            elif size == 0:
                size = total - offset
            if size < 8:
                raise LayoutError(f"bad box size {size} at {offset}")
            boxes.append(Box(kind, offset, size))
            offset += size
    return boxes


def shift_chunk_offsets(moov: bytearray, delta: int) -> None:
    """Add `delta` to every chunk offset in a moov box, in place. Raises if a 32-bit one overflows."""

    def walk(start: int, end: int) -> None:
        offset = start
        while offset + 8 <= end:
            size, kind = struct.unpack_from(">I4s", moov, offset)
            header = 8
            if size == 1:
                size = struct.unpack_from(">Q", moov, offset + 8)[0]
                header = 16
            if size < header or offset + size > end:
                raise LayoutError(f"bad {kind!r} box inside moov")
            body = offset + header
            if kind in CONTAINERS:
                walk(body, offset + size)
            elif kind in {b"stco", b"co64"}:
                count = struct.unpack_from(">I", moov, body + 4)[0]
                wide = kind == b"co64"
                fmt, width = (">Q", 8) if wide else (">I", 4)
                for i in range(count):
                    at = body + 8 + i * width
                    value = struct.unpack_from(fmt, moov, at)[0] + delta
                    if not wide and value > 0xFFFFFFFF:
                        raise LayoutError("chunk offsets overflow 32 bits: the file needs co64")
                    struct.pack_into(fmt, moov, at, value)
            offset += size

    walk(8, len(moov))
