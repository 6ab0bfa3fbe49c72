"""HLS media playlists -> segments placed on the recording's timeline.

A segment's position is its #EXT-X-PROGRAM-DATE-TIME in epoch ms where the playlist has one
(carried forward by #EXTINF durations), otherwise the running sum of #EXTINF from 0. Segment
URIs are percent-decoded and resolved relative to the playlist, and must stay inside the
recording's folder: a hostile playlist must not make the worker read other objects. An entry
that breaks that rule (an absolute URI, a path that leaves the folder) is kept on the timeline
with the reason it is refused, so it becomes a gap while the rest of the playlist still counts.
Byte ranges (#EXT-X-BYTERANGE, ffmpeg's single_file) and fMP4 initialization sections
(#EXT-X-MAP, CMAF) travel with each segment. Parsing is line by line (`hls_parser`), so a
playlist of any size is read in bounded memory; there is no size cap.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, tzinfo

from workers.archive.hls_parser import MediaPlaylistReader, read_segments
from workers.archive.model import ByteRange, PlaylistError, Segment, resolve_segment_key

# Two entries placed within this of each other are back to back, not overlapping: PROGRAM-DATE-TIME
# written per segment jitters by a few ms, well under a frame.
OVERLAP_TOLERANCE_MS = 5.0

__all__ = [
    "ByteRange",
    "PlaylistError",
    "Segment",
    "covering",
    "merge_timelines",
    "parse_playlist",
    "resolve_segment_key",
]


def parse_playlist(
    text: str, playlist_key: str, recording_prefix: str, pdt_zone: tzinfo = UTC
) -> list[Segment]:
    """Segments of one media playlist, in playlist order, placed on the timeline (offset-less
    PROGRAM-DATE-TIME read in `pdt_zone`)."""
    reader = MediaPlaylistReader(playlist_key, recording_prefix, pdt_zone)
    return list(read_segments(text.splitlines(), reader))


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


# Pictures a segment shows before its own start: the leading pictures of an open GOP (x265's
# CRA, which -preset ultrafast places so the last picture before a keyframe is coded after it)
# and B-frame reordering are carried in the next segment by the HLS muxer, which splits at the
# keyframe's decode time. A few frames at most; a range ending this close before a segment
# starts may have its last pictures in that segment.
LEADING_MS = 500.0


def covering(
    segments: list[Segment], start_ms: float, end_ms: float, leading_ms: float = 0.0
) -> list[Segment]:
    """Segments that overlap [start_ms, end_ms), in timeline order, and with `leading_ms` (an
    export passes LEADING_MS) the one continuing the last of them where it starts that soon
    after the end (it may hold the range's last pictures); a segment that another already
    covers whole (an overlapping second playlist) is left out, and one that the next overlaps in
    part (a recorder restarted and re-sent its last second) is used only until the next one
    starts (`until_ms`): each instant of the recording is taken once."""
    chosen: list[Segment] = []
    covered_to = float("-inf")
    for segment in segments:
        if segment.end_ms <= start_ms or segment.start_ms >= end_ms + leading_ms:
            continue
        if segment.start_ms >= end_ms and not _continues(chosen, segment):
            continue
        if segment.end_ms <= covered_to + 1:
            continue
        chosen.append(segment)
        covered_to = max(covered_to, segment.end_ms)
    return handed_over(chosen)


def _continues(chosen: list[Segment], segment: Segment) -> bool:
    """`segment` follows on from the last chosen one: the same playlist, no discontinuity, no gap."""
    if not chosen or segment.discontinuity or segment.refused:
        return False
    last = chosen[-1]
    return last.playlist == segment.playlist and abs(segment.start_ms - last.end_ms) < 1 and not last.refused


def handed_over(chosen: list[Segment]) -> list[Segment]:
    """Each segment ends where the next one (in timeline order) starts, where that is earlier
    than its own end by more than OVERLAP_TOLERANCE_MS. The later segment wins: it starts at a
    keyframe, so it decodes on its own, while the earlier one's tail can simply be left out.
    A refused entry (never fetched) takes nothing over, and neither does the next entry of the
    same playlist without #EXT-X-DISCONTINUITY: the recorder says its stream goes on, so an
    earlier PROGRAM-DATE-TIME there is clock jitter, not media sent twice."""
    out = list(chosen)
    for index, segment in enumerate(chosen[:-1]):
        following = next((s for s in chosen[index + 1 :] if not s.refused), None)
        if following is None or segment.refused:
            continue
        if following.playlist == segment.playlist and not following.discontinuity:
            continue
        if following.start_ms < segment.end_ms - OVERLAP_TOLERANCE_MS:
            out[index] = replace(segment, until_ms=max(following.start_ms, segment.start_ms))
    return out
