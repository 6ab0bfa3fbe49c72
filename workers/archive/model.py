"""What the archive is made of: segments on the recording's timeline, and the URI rule that
keeps a playlist inside its recording's folder."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import unquote


class PlaylistError(ValueError):
    """A playlist that cannot be used; the recording is then treated as not having it."""


class MasterPlaylist(PlaylistError):
    """A multivariant (master) playlist where a media playlist was read: it lists renditions
    (workers/archive/renditions.py), not segments."""


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, start + length) of an object."""

    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class Segment:
    key: str  # S3 key of the segment (of the whole file, where `byte_range` names a part of it)
    start_ms: float  # position on the recording's timeline
    duration_ms: float
    discontinuity: bool  # an #EXT-X-DISCONTINUITY precedes it: timestamps may restart
    playlist: str
    byte_range: ByteRange | None = None  # #EXT-X-BYTERANGE: only these bytes of `key`
    init_key: str | None = None  # fMP4/CMAF: the #EXT-X-MAP initialization section's key
    init_range: ByteRange | None = None  # ... and its byte range, where it has one
    refused: str = ""  # why this entry is never fetched (absolute URI, outside the folder): a gap
    # AES-128 (#EXT-X-KEY): the key object's S3 key and the 16-byte IV (explicit, or the entry's
    # media sequence number); None where the entry is not encrypted.
    aes_key: str | None = None
    aes_iv: bytes | None = None
    # Set by `covering` where the next segment chosen starts inside this one (two playlists that
    # overlap, a restarted recorder re-sending its last second): this one's media shown from then
    # on is left to the next one, so each instant appears once.
    until_ms: float | None = None

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.duration_ms

    @property
    def identity(self) -> tuple[str, int, int]:
        """What makes two playlist entries the same media: the object and the bytes of it."""
        if self.byte_range is None:
            return (self.key, 0, -1)
        return (self.key, self.byte_range.start, self.byte_range.length)

    def overlaps(self, start_ms: float, end_ms: float) -> bool:
        return self.end_ms > start_ms and self.start_ms < end_ms


def resolve_segment_key(playlist_key: str, uri: str, recording_prefix: str, what: str = "segment") -> str:
    """The S3 key a (percent-encoded) segment URI names, refusing anything outside the folder
    (`what` names the URI's role in the refusal: a segment, a key, a variant playlist)."""
    if uri and "://" not in uri and "?" not in uri and "#" not in uri:
        uri = unquote(uri)  # a%20b.ts names the object "a b.ts"; %2e%2e is checked as ".."
    if not uri or "://" in uri or uri.startswith("/") or "\\" in uri or "?" in uri or "#" in uri:
        raise PlaylistError(f"{what} URI {uri!r} is not a relative path")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
        raise PlaylistError(f"{what} URI holds control characters")
    key = posixpath.normpath(posixpath.join(posixpath.dirname(playlist_key), uri))
    prefix = recording_prefix.rstrip("/") + "/" if recording_prefix else ""
    if key.startswith("../") or key == ".." or not key.startswith(prefix):
        raise PlaylistError(f"{what} URI {uri!r} leaves the recording's folder")
    return key
