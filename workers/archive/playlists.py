"""HLS media playlists -> segments placed on the recording's timeline.

A segment's position is its #EXT-X-PROGRAM-DATE-TIME in epoch ms where the playlist has one
(carried forward by #EXTINF durations), otherwise the running sum of #EXTINF from 0. Segment
URIs are resolved relative to the playlist and must stay inside the recording's folder: a
hostile playlist must not make the worker read other objects.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import m3u8

MAX_PLAYLIST_BYTES = 16 * 1024 * 1024  # a day of 2 s segments is ~3 MB; more is not a playlist


class PlaylistError(ValueError):
    """A playlist that cannot be used; the recording is then treated as not having it."""


@dataclass(frozen=True)
class Segment:
    key: str  # S3 key of the segment
    start_ms: float  # position on the recording's timeline
    duration_ms: float
    discontinuity: bool  # an #EXT-X-DISCONTINUITY precedes it: timestamps may restart
    playlist: str

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.duration_ms


def resolve_segment_key(playlist_key: str, uri: str, recording_prefix: str) -> str:
    """The S3 key a segment URI names, refusing anything outside the recording's folder."""
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
    for item in playlist.segments:
        duration_ms = float(item.duration or 0) * 1000
        if duration_ms <= 0 or duration_ms > 3600 * 1000:
            raise PlaylistError(f"segment {item.uri!r} has an invalid duration")
        when = item.current_program_date_time
        start_ms = when.timestamp() * 1000 if when is not None else running_ms
        segments.append(
            Segment(
                key=resolve_segment_key(playlist_key, item.uri, recording_prefix),
                start_ms=start_ms,
                duration_ms=duration_ms,
                discontinuity=bool(item.discontinuity),
                playlist=playlist_key,
            )
        )
        running_ms += duration_ms
    return segments


def merge_timelines(playlists: list[list[Segment]]) -> list[Segment]:
    """One timeline from several playlists: sorted, a key listed twice kept once."""
    seen: set[str] = set()
    merged: list[Segment] = []
    for segment in sorted((s for p in playlists for s in p), key=lambda s: (s.start_ms, s.key)):
        if segment.key in seen:
            continue
        seen.add(segment.key)
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
