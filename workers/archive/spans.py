"""What a recording holds, as time: spans of readable media and the gaps between them, a page
at a time, from the archive index — never a segment's bytes.

A page is bounded by media, not by the archive: at most PAGE_SEGMENTS playlist entries within at
most PAGE_MS of timeline, so its cost (the playlists that can hold it, from the index; a LIST of
the slice of the segment folders it names) is the same in a 30-day archive as in a 1-minute one.
The cursor names where the next page starts and where the last span seen ended, so the gap
across a page boundary is reported once, on the page where the media resumes.

Spans are what the playlists list and S3 holds: an entry whose object is missing from its
folder's listing, or whose URI is refused (absolute, outside the folder), is a gap. A segment
that exists but does not decode is found by an export (LackLength), not here.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import logging
import posixpath
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from tasks.exports.spec import S3Location
from tasks.storage import ListedObject, ObjectStore
from workers.archive.index import ArchiveIndex, PlaylistSummary
from workers.archive.kept_listing import KeptListing
from workers.archive.locate import Locator, natural_key
from workers.archive.model import Segment
from workers.archive.packing import unpack
from workers.archive.playlists import merge_timelines
from workers.archive.ranges import (
    Lookup,
    known_unchanged,
    open_index,
    recording_playlists,
    recording_prefix,
    renditions_of,
)

log = logging.getLogger(__name__)

PAGE_MS = 3600 * 1000  # the most timeline one page looks at: one or two hourly playlists
# The most entries one page checks: what a 1-minute recording of 2 s segments holds, and a bit
# more. The page's cost (the LIST of its slice of the segment folder, the entries decoded) is
# then about a short recording's, however long the archive or its playlists.
PAGE_SEGMENTS = 40
EDGE_PLAYLISTS = 2  # playlists read at each end of each guessed order to place the recording
JOIN_MS = 1  # entries this close are contiguous (#EXTINF and PROGRAM-DATE-TIME round to ms)
PLAIN = {"Name": "", "Width": 0, "Height": 0, "Bandwidth": 0, "Codec": ""}  # no master playlist


class NotARecording(Exception):
    """Nothing under the folder is a media playlist (ErrorCode 4)."""


class BadCursor(ValueError):
    """A Cursor this service did not hand out for this window (ErrorCode 2)."""


@dataclass(frozen=True)
class SpansPage:
    spans: list[tuple[int, int]]
    gaps: list[tuple[int, int]]
    renditions: list[dict[str, object]]  # as the API answers them (Rendition.answer())
    cursor: str
    extent: tuple[int, int] | None  # the recording's first and last ms, as far as it is known


def encode_cursor(start_ms: int, seen_to_ms: int | None) -> str:
    raw = f"v1:{start_ms}:{'' if seen_to_ms is None else seen_to_ms}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int | None]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, start, seen = raw.split(":")
        if version != "v1":
            raise ValueError(version)
        return int(start), (int(seen) if seen else None)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor("is not a cursor this service handed out") from exc


def merge_spans(segments: Iterable[Segment], start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """Maximal [start, end) spans of the segments, clipped to the window."""
    spans: list[list[int]] = []
    for segment in sorted(segments, key=lambda s: s.start_ms):
        lo, hi = max(round(segment.start_ms), start_ms), min(round(segment.end_ms), end_ms)
        if hi <= lo:
            continue
        if spans and lo <= spans[-1][1] + JOIN_MS:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    return [(a, b) for a, b in spans]


def gaps_between(spans: list[tuple[int, int]], seen_to_ms: int | None) -> list[tuple[int, int]]:
    """The holes between consecutive spans, and before the first one since the previous page's
    last span ended (`seen_to_ms`)."""
    gaps: list[tuple[int, int]] = []
    previous = seen_to_ms
    for start, end in spans:
        if previous is not None and start > previous:
            gaps.append((previous, start))
        previous = end if previous is None else max(previous, end)
    return gaps


def _cut(
    streams: Iterable[Iterator[Segment]], start_ms: int, end_ms: int, limit: int
) -> tuple[list[Segment], int]:
    """Merge the playlists' sorted streams: the same media once, and past `limit` entries the
    page ends where the limit-th one ends (never before start_ms + 1), when more follow. Stops
    pulling at that cut: what the streams hold after it is never decoded."""
    entries: list[Segment] = []
    seen: set[tuple[str, int, int]] = set()
    page_end, cut = end_ms, None
    for segment in heapq.merge(*streams, key=lambda s: (s.start_ms, s.identity)):
        if segment.identity in seen:
            continue
        if cut is not None:
            page_end = cut  # more than `limit` entries: the page ends at the cut
            if segment.start_ms >= cut:
                break
        seen.add(segment.identity)
        entries.append(segment)
        if len(entries) == limit:
            cut = max(int(segment.end_ms), start_ms + 1)
    return entries, page_end


def _ordered_window(segments: Iterator[Segment], start_ms: float, end_ms: float) -> Iterator[Segment]:
    """The entries of a list whose starts only grow that overlap the window: it stops at the
    first one starting at or after its end, as none after it can overlap."""
    for segment in segments:
        if segment.start_ms >= end_ms:
            return
        if segment.overlaps(start_ms, end_ms):
            yield segment


def present_keys(store: ObjectStore, source: S3Location, wanted: set[str]) -> set[str]:
    """Which of the wanted keys exist: per folder, one LIST from just before the first wanted
    key to past the last (a slice of the folder, however long the recording). Its Prefix is
    what the first and last keys share (every key between them shares it too): the request
    names only the slice, so a store that scans what a prefix matches (moto) scans that."""
    by_folder: dict[str, list[str]] = defaultdict(list)
    for key in wanted:
        by_folder[posixpath.dirname(key)].append(key)
    found: set[str] = set()
    for folder_keys in by_folder.values():
        folder_keys.sort()
        first, last = folder_keys[0], folder_keys[-1]
        budget = len(folder_keys) * 4 + 1000  # names out of time order: stop rather than list all
        reached = ""
        page_keys = len(folder_keys) + 1  # one request sized to the slice, and one key to see its end
        shared = posixpath.commonprefix([first, last])  # the folder's "/" and more: no "/" after it
        for key in store.keys_from(source.bucket, shared, first[:-1], source.region, page_keys):
            if key > last:
                reached = last
                break
            if budget <= 0:
                break
            budget -= 1
            reached = key
            if key in wanted:
                found.add(key)
        else:
            reached = last  # the folder ended: what was not listed does not exist
        # Past the budget, what was not reached is taken as present: unknown is not a gap.
        found.update(k for k in folder_keys if k > reached)
    return found


def held_by_storage(store: ObjectStore, source: S3Location, entries: list[Segment]) -> list[Segment]:
    """The entries whose objects S3 holds: the segment, and what reading it needs besides (an
    fMP4 initialization section, an AES-128 key object), each named by the playlist. Those
    others are looked for by a LIST of their own, so a page of an fMP4 recording does not LIST
    from its init.mp4 to its segments (most of the folder)."""
    segments = present_keys(store, source, {s.key for s in entries})
    needed = {key for s in entries for key in (s.init_key, s.aes_key) if key}
    others = present_keys(store, source, needed) if needed else set()
    return [
        s
        for s in entries
        if s.key in segments and all(key in others for key in (s.init_key, s.aes_key) if key)
    ]


class RecordingSpans:
    """One spans request against one recording's folder and index."""

    def __init__(
        self,
        store: ObjectStore,
        source: S3Location,
        live_path: str,
        index: ArchiveIndex | None = None,
        share_listing: bool = False,
        rendition: str = "",
    ):
        """Raises UnknownRendition for a `rendition` an ABR ladder does not have."""
        self.store, self.source = store, source
        self.prefix = recording_prefix(source, live_path)
        settings = store.settings
        index = index or open_index(settings, source, self.prefix)
        self.lookup = Lookup(store, source, self.prefix, index, settings.pdt_tzinfo)
        cached = self.lookup.index.summaries()
        if share_listing:
            live = {k for k, s in cached.items() if s.complete and s.usable and not s.ended}
            listed = KeptListing(self.lookup).playlists(live)
        else:
            listed = self.lookup.listed()
        known = known_unchanged(self.lookup, listed, cached)
        self.locator = Locator(listed, known, self.lookup.head, settings.archive_clock_skew_s * 1000)
        self.renditions = renditions_of(self.lookup, self.locator) if listed else []
        # One rendition's playlists, as an export reads them (renditions are never spliced).
        self.listed = recording_playlists(self.lookup, self.locator, cached, rendition) if listed else []
        self.locator.listed = self.listed

    def _edges(self) -> list[ListedObject]:
        """The playlists at each end of both guessed orders (by LastModified, by name)."""
        picked: dict[str, ListedObject] = {}
        for order in (
            sorted(self.listed, key=lambda o: (o.last_modified, o.key)),
            sorted(self.listed, key=lambda o: natural_key(o.key)),
        ):
            for obj in order[:EDGE_PLAYLISTS] + order[-EDGE_PLAYLISTS:]:
                picked[obj.key] = obj
        return list(picked.values())

    def _usable(self) -> list[PlaylistSummary]:
        mine = {o.key for o in self.listed}
        summaries = [
            s for k, s in self.locator.known.items() if k in mine and s.usable and s.first_ms is not None
        ]
        absolute = [s for s in summaries if s.absolute]
        return absolute or summaries  # a folder of timestamped playlists: their timeline

    def extent(self) -> tuple[int, int] | None:
        """Where the recording starts and (at the latest) ends, from the edges' heads and what
        the index knows; None when no playlist is a media playlist."""
        for obj in self._edges():
            self.locator.summary(obj)
        usable = self._usable()
        if not usable:
            return None
        first = min(s.first_ms or 0.0 for s in usable)
        last = max((s.end_ms if s.complete else s.est_end_ms) or s.first_ms or 0.0 for s in usable)
        return int(first), int(last) + 1

    def segments(self, start_ms: float, end_ms: float) -> list[Segment]:
        chosen = self.locator.choose(start_ms, end_ms)
        found = [self.lookup.segments(o, self.locator.summary(o), start_ms, end_ms) for o in chosen]
        return merge_timelines(found)

    def page_entries(self, start_ms: int, end_ms: int, limit: int) -> tuple[list[Segment], int]:
        """The entries of one page and where it ends: those overlapping [start_ms, end_ms) in
        timeline order, the same media once, cut after the `limit`-th entry's end when more
        follow. The same answer as merging every chosen playlist's entries in the window, but
        an ordered packed list is decoded only up to the cut: a page of a day-long or hourly
        playlist decodes about `limit` entries, not the playlist."""
        chosen = self.locator.choose(start_ms, end_ms)
        try:
            return _cut(
                [self._stream(o, start_ms, end_ms, lazy=True) for o in chosen], start_ms, end_ms, limit
            )
        except (ValueError, TypeError, zlib.error):  # a damaged packed list: a miss, read from S3
            log.warning("archive index entry unreadable, reading S3", extra={"recording": self.prefix})
            return _cut(
                [self._stream(o, start_ms, end_ms, lazy=False) for o in chosen], start_ms, end_ms, limit
            )

    def _stream(self, obj: ListedObject, start_ms: float, end_ms: float, lazy: bool) -> Iterator[Segment]:
        """One playlist's entries in the window, sorted by (start, identity), lazily where its
        packed list is ordered (stopped at the window's end, or by the consumer at its cut)."""
        summary = self.locator.summary(obj)
        packed = self.lookup.index.packed(summary) if lazy and summary.complete and summary.ordered else None
        if packed is not None:
            self.lookup.from_index += 1
            return _ordered_window(unpack(packed, obj.key, after_ms=start_ms), start_ms, end_ms)
        found = self.lookup.segments(obj, summary, start_ms, end_ms)
        return iter(sorted(found, key=lambda s: (s.start_ms, s.identity)))

    def next_start(self, after_ms: int) -> int | None:
        """Where the next placed playlist starts after `after_ms`: an empty page jumps a long
        hole at once instead of walking it a page at a time."""
        starts = [int(s.first_ms) for s in self._usable() if s.first_ms is not None and s.first_ms > after_ms]
        return min(starts, default=None)

    def resumes_at(self, page_start: int, page_end: int, window_end: int) -> int | None:
        """Where media resumes after an empty page: the next playlist's start, or the first entry
        past the page of a playlist the page lies inside (a hole within one playlist: a
        PROGRAM-DATE-TIME jump of days). One entry is decoded of each such playlist, lazily
        where its packed list is ordered, so a hole of any length costs one page."""
        starts = [self.next_start(page_start)]
        for obj in self.locator.choose(page_start, page_end):
            try:
                after = next(self._stream(obj, page_end, window_end, lazy=True), None)
            except (ValueError, TypeError, zlib.error):  # a damaged packed list: read it from S3
                after = next(self._stream(obj, page_end, window_end, lazy=False), None)
            starts.append(int(after.start_ms) if after is not None else None)
        return min((s for s in starts if s is not None), default=None)


def recording_spans(
    store: ObjectStore,
    source: S3Location,
    live_path: str,
    start_ms: int | None = None,
    duration_ms: int | None = None,
    cursor: str = "",
    index: ArchiveIndex | None = None,
    rendition: str = "",
) -> SpansPage:
    """One page of the recording's spans and gaps in [start_ms, start_ms + duration_ms) (the
    whole recording where absent), of one rendition of an ABR ladder (`rendition`, else the
    best); raises NotARecording, BadCursor, UnknownRendition."""
    recording = RecordingSpans(store, source, live_path, index, share_listing=True, rendition=rendition)
    if not recording.listed:
        raise NotARecording(f"no playlist under {live_path!r}")
    extent = recording.extent()
    if extent is None:
        raise NotARecording(f"no media playlist under {live_path!r}")
    window_start = extent[0] if start_ms is None else start_ms
    window_end = (
        (extent[1] if start_ms is None else max(extent[1], start_ms))
        if duration_ms is None
        else window_start + duration_ms
    )
    page_start, seen_to = window_start, None
    if cursor:
        page_start, seen_to = decode_cursor(cursor)
        if not window_start <= page_start < window_end:
            raise BadCursor("does not belong to this StartPos and Duration")
    entries, page_end = recording.page_entries(
        page_start, min(page_start + PAGE_MS, window_end), PAGE_SEGMENTS
    )
    readable = held_by_storage(store, source, [s for s in entries if not s.refused])
    spans = merge_spans(readable, page_start, page_end)
    gaps = gaps_between(spans, seen_to)
    seen_to = (
        max([end for _, end in spans] + ([seen_to] if seen_to is not None else []))
        if spans or seen_to
        else None
    )
    if not entries:
        jump = recording.resumes_at(page_start, page_end, window_end)
        if jump is not None and jump > page_end:
            page_end = min(jump, window_end)
    next_cursor = encode_cursor(page_end, seen_to) if page_end < window_end else ""
    log.info(
        "recording spans",
        extra={
            "recording": recording.prefix,
            "playlists": len(recording.listed),
            "entries": len(entries),
            "head_reads": recording.lookup.head_reads,
            "full_reads": recording.lookup.full_reads,
        },
    )
    renditions = [r.answer() for r in recording.renditions] or [dict(PLAIN)]
    return SpansPage(spans, gaps, renditions, next_cursor, extent)


def relist_if_stale(
    store: ObjectStore, source: S3Location, live_path: str, index: ArchiveIndex | None = None
) -> bool:
    """After a page has answered: the recording's kept folder listing made again where a page
    used it past its freshness (workers/archive/kept_listing.py), so the next page sees what
    changed anywhere in the folder without waiting for the LIST itself."""
    prefix = recording_prefix(source, live_path)
    index = index or open_index(store.settings, source, prefix)
    lookup = Lookup(store, source, prefix, index, store.settings.pdt_tzinfo)
    return KeptListing(lookup).relist_if_stale()


def iso_ms(ms: float) -> str:
    """A timeline position as a client reads it: UTC, to the second (a timeline without
    PROGRAM-DATE-TIME starts at 1970-01-01T00:00:00Z)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _before(segment: Segment, at_ms: int) -> bool:
    return not segment.refused and segment.end_ms <= at_ms


def _after(segment: Segment, at_ms: int) -> bool:
    return not segment.refused and segment.start_ms >= at_ms


def coverage_note(
    store: ObjectStore,
    source: S3Location,
    live_path: str,
    start_ms: int,
    end_ms: int,
    index: ArchiveIndex | None = None,
) -> str:
    """What the recording does cover near a range that holds no media, for the "no media"
    answer: its extent, the nearest media before and after, and a hint when the range looks
    like seconds where milliseconds are meant. Empty when nothing can be said."""
    recording = RecordingSpans(store, source, live_path, index)
    if not recording.listed:
        return f"; nothing under {live_path!r} is a recording"
    extent = recording.extent()
    if extent is None:
        return f"; no media playlist under {live_path!r}"
    parts = [f"the recording covers {iso_ms(extent[0])}-{iso_ms(extent[1])}"]
    # Readable media only: entries whose segment (or init section, key) storage lacks are the hole.
    before = held_by_storage(
        store, source, [s for s in recording.segments(start_ms - PAGE_MS, start_ms) if _before(s, start_ms)]
    )
    if before:
        parts.append(f"nearest media before ends at {iso_ms(max(s.end_ms for s in before))}")
    after = held_by_storage(
        store, source, [s for s in recording.segments(end_ms, end_ms + PAGE_MS) if _after(s, end_ms)]
    )
    later = min((s.start_ms for s in after), default=None)
    if later is None:
        later = recording.next_start(end_ms)
    if later is not None:
        parts.append(f"nearest media after starts at {iso_ms(later)}")
    parts.append(f"the request asked for {iso_ms(start_ms)}-{iso_ms(end_ms)}")
    if start_ms < extent[0] and extent[0] <= start_ms * 1000 < extent[1]:
        parts.append("StartPos looks like seconds: it is in milliseconds")
    return "; " + "; ".join(parts)
