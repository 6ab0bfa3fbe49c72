"""HLS media playlists -> segments placed on the recording's timeline.

A segment's position is its #EXT-X-PROGRAM-DATE-TIME in epoch ms where the playlist has one
(carried forward by #EXTINF durations), otherwise the running sum of #EXTINF from 0. Segment
URIs are percent-decoded and resolved relative to the playlist, and must stay inside the
recording's folder: a hostile playlist must not make the worker read other objects. An entry
that breaks that rule (an absolute URI, a path that leaves the folder) is kept on the timeline
with the reason it is refused, so it becomes a gap while the rest of the playlist still counts.
Byte ranges (#EXT-X-BYTERANGE, ffmpeg's single_file) and fMP4 initialization sections
(#EXT-X-MAP, CMAF) travel with each segment.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import unquote

import m3u8

MAX_PLAYLIST_BYTES = 16 * 1024 * 1024  # a day of 2 s segments is ~3 MB; more is not a playlist


class PlaylistError(ValueError):
    """A playlist that cannot be used; the recording is then treated as not having it."""


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

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.duration_ms

    @property
    def identity(self) -> tuple[str, int, int]:
        """What makes two playlist entries the same media: the object and the bytes of it."""
        if self.byte_range is None:
            return (self.key, 0, -1)
        return (self.key, self.byte_range.start, self.byte_range.length)


def resolve_segment_key(playlist_key: str, uri: str, recording_prefix: str) -> str:
    """The S3 key a (percent-encoded) segment URI names, refusing anything outside the folder."""
    if uri and "://" not in uri and "?" not in uri and "#" not in uri:
        uri = unquote(uri)  # a%20b.ts names the object "a b.ts"; %2e%2e is checked as ".."
    if not uri or "://" in uri or uri.startswith("/") or "\\" in uri or "?" in uri or "#" in uri:
        raise PlaylistError(f"segment URI {uri!r} is not a relative path")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
        raise PlaylistError("segment URI holds control characters")
    key = posixpath.normpath(posixpath.join(posixpath.dirname(playlist_key), uri))
    prefix = recording_prefix.rstrip("/") + "/" if recording_prefix else ""
    if key.startswith("../") or key == ".." or not key.startswith(prefix):
        raise PlaylistError(f"segment URI {uri!r} leaves the recording's folder")
    return key


def parse_playlist(text: str, playlist_key: str, recording_prefix: str) -> list[Segment]:
    """Segments of one media playlist, in playlist order, placed on the timeline."""
    if len(text) > MAX_PLAYLIST_BYTES:
        raise PlaylistError("playlist too large")
    if not text.lstrip("\ufeff").startswith("#EXTM3U"):
        raise PlaylistError("not an HLS playlist (no #EXTM3U)")
    try:
        playlist = m3u8.loads(text)
    except Exception as exc:  # m3u8 raises assorted errors on malformed tags
        raise PlaylistError(f"unparseable playlist: {exc}") from exc
    if playlist.is_variant:
        raise PlaylistError("a master playlist, not a media playlist")
    segments: list[Segment] = []
    running_ms = 0.0
    next_offset: dict[str, int] = {}  # a BYTERANGE without @offset follows the previous range
    for item in playlist.segments:
        duration_ms = float(item.duration or 0) * 1000
        if duration_ms <= 0 or duration_ms > 3600 * 1000:
            raise PlaylistError(f"segment {item.uri!r} has an invalid duration")
        when = item.current_program_date_time
        start_ms = when.timestamp() * 1000 if when is not None else running_ms
        running_ms += duration_ms
        refused = ""
        try:
            key = resolve_segment_key(playlist_key, item.uri, recording_prefix)
        except PlaylistError as exc:
            key, refused = str(item.uri or ""), str(exc)
        init_key, init_range = _init_section(item, playlist_key, recording_prefix)
        byte_range = _byte_range(item.byterange, next_offset.get(key, 0))
        if byte_range is not None:
            next_offset[key] = byte_range.end
        if init_key is None and getattr(item, "init_section", None) is not None and not refused:
            refused = "its initialization section (#EXT-X-MAP) is outside the recording's folder"
        segments.append(
            Segment(
                key=key,
                start_ms=start_ms,
                duration_ms=duration_ms,
                discontinuity=bool(item.discontinuity),
                playlist=playlist_key,
                byte_range=byte_range,
                init_key=init_key,
                init_range=init_range,
                refused=refused,
            )
        )
    return segments


def _byte_range(spec: str | None, implied_start: int) -> ByteRange | None:
    """#EXT-X-BYTERANGE's "length[@offset]"; without the offset it follows the previous range."""
    if not spec:
        return None
    length_text, _, offset_text = str(spec).partition("@")
    try:
        length = int(length_text)
        start = int(offset_text) if offset_text else implied_start
    except ValueError as exc:
        raise PlaylistError(f"bad byte range {spec!r}") from exc
    if length <= 0 or start < 0:
        raise PlaylistError(f"bad byte range {spec!r}")
    return ByteRange(start, length)


def _init_section(item: object, playlist_key: str, prefix: str) -> tuple[str | None, ByteRange | None]:
    """The #EXT-X-MAP in force for a segment: its key and byte range; (None, None) without one
    or when it points outside the recording (the segment is then refused)."""
    section = getattr(item, "init_section", None)
    if section is None or not section.uri:
        return None, None
    try:
        key = resolve_segment_key(playlist_key, section.uri, prefix)
    except PlaylistError:
        return None, None
    return key, _byte_range(section.byterange, 0)


def merge_timelines(playlists: list[list[Segment]]) -> list[Segment]:
    """One timeline from several playlists: sorted, the same media listed twice kept once."""
    seen: set[tuple[str, int, int]] = set()
    merged: list[Segment] = []
    for segment in sorted((s for p in playlists for s in p), key=lambda s: (s.start_ms, s.identity)):
        if segment.identity in seen:
            continue
        seen.add(segment.identity)
        merged.append(segment)
    return merged


def covering(segments: list[Segment], start_ms: float, end_ms: float) -> list[Segment]:
    """Segments that overlap [start_ms, end_ms), in timeline order; a segment that another
    already covers whole (an overlapping second playlist) is left out."""
    chosen: list[Segment] = []
    covered_to = float("-inf")
    for segment in segments:
        if segment.end_ms <= start_ms or segment.start_ms >= end_ms:
            continue
        if segment.end_ms <= covered_to + 1:
            continue
        chosen.append(segment)
        covered_to = max(covered_to, segment.end_ms)
    return chosen
