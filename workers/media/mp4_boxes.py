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
        for kind, body, box_end in _children(moov, start, end):
            if kind in CONTAINERS:
                walk(body, box_end)
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

    walk(8, len(moov))


def _children(data: bytes | bytearray, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(kind, body offset, box end) of the boxes in data[start:end]."""
    found: list[tuple[bytes, int, int]] = []
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        if size < header or offset + size > end:
            raise LayoutError(f"bad {kind!r} box inside moov")
        found.append((kind, offset + header, offset + size))
        offset += size
    return found


def _child(data: bytearray, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, body, box_end in _children(data, start, end):
        if found == kind:
            return body, box_end
    return None


def _patch_duration(data: bytearray, body: int, v0_at: int, v1_at: int, value: int) -> None:
    """Write a full box's duration field, at its version 0 or version 1 position."""
    if data[body] == 1:
        struct.pack_into(">Q", data, body + v1_at, value)
    else:
        struct.pack_into(">I", data, body + v0_at, min(value, 0xFFFFFFFF))


def trim_video_presentation(path: Path, seconds: float) -> bool:
    """End the video track's presentation after `seconds` by shortening its edit list (and the
    track and movie durations to match), in place. Frames past that are still in the file, as
    references for frames shown before it, but no player shows them. False without an edit list."""
    moov_box = next((b for b in top_level_boxes(path) if b.kind == b"moov"), None)
    if moov_box is None:
        return False
    with path.open("r+b") as handle:
        handle.seek(moov_box.offset)
        moov = bytearray(handle.read(moov_box.size))
        mvhd = _child(moov, 8, len(moov), b"mvhd")
        if mvhd is None:
            return False
        timescale = struct.unpack_from(">I", moov, mvhd[0] + (20 if moov[mvhd[0]] == 1 else 12))[0]
        wanted = round(seconds * timescale)
        patched = False
        longest = wanted  # the movie lasts as long as its longest track
        for kind, body, end in _children(moov, 8, len(moov)):
            if kind != b"trak":
                continue
            mdia = _child(moov, body, end, b"mdia")
            hdlr = _child(moov, *mdia, b"hdlr") if mdia else None
            edts = _child(moov, body, end, b"edts")
            elst = _child(moov, *edts, b"elst") if edts else None
            tkhd = _child(moov, body, end, b"tkhd")
            if hdlr is None or moov[hdlr[0] + 8 : hdlr[0] + 12] != b"vide" or elst is None:
                if tkhd is not None:
                    v1 = moov[tkhd[0]] == 1
                    longest = max(
                        longest,
                        struct.unpack_from(">Q" if v1 else ">I", moov, tkhd[0] + (28 if v1 else 20))[0],
                    )
                continue
            version, count = moov[elst[0]], struct.unpack_from(">I", moov, elst[0] + 4)[0]
            width = 20 if version == 1 else 12
            earlier = 0
            for i in range(count):
                at = elst[0] + 8 + i * width
                fmt = ">Q" if version == 1 else ">I"
                if i < count - 1:
                    earlier += struct.unpack_from(fmt, moov, at)[0]
                else:
                    struct.pack_into(fmt, moov, at, max(0, wanted - earlier))
            if tkhd is not None:
                _patch_duration(moov, tkhd[0], 20, 28, wanted)
            patched = True
        if patched:
            _patch_duration(moov, mvhd[0], 16, 24, longest)
            handle.seek(moov_box.offset)
            handle.write(moov)
    return patched
