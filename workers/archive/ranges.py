"""Which segments of a recording cover a time range: the archive index put to work.

One LIST of the recording's folder says which playlists exist and their ETags; the index
(Redis) knows what each unchanged one holds, `Locator` picks the few playlists that can hold
the range, and only those are read: from the index when packed there, else streamed from S3
line by line (and then packed into the index). Never a segment the range does not need, never
a listing of the whole bucket. A playlist in archival storage stops the lookup with
SegmentsArchived naming it, so the job parks and restores it as it would a segment.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tasks.exports.spec import S3Location
from tasks.platform.settings import Settings
from tasks.storage import ListedObject, ObjectArchived, ObjectNotFound, ObjectStore, StorageError, TooLarge
from workers.archive.hls_parser import MediaPlaylistReader, read_segments
from workers.archive.index import ArchiveIndex, PlaylistSummary, recording_id
from workers.archive.locate import Locator
from workers.archive.model import PlaylistError, Segment
from workers.archive.packing import SegmentPacker, unpack
from workers.archive.playlists import covering, merge_timelines
from workers.archive.variants import MASTER_MAX_BYTES, Rendition, choose, is_master, ladder, parse_master
from workers.errors import SegmentsArchived

log = logging.getLogger(__name__)

HEAD_BYTES = 16 * 1024  # the tags before the first segment, and the first PROGRAM-DATE-TIME
MAX_LINE_BYTES = 64 * 1024  # a playlist line longer than this is not a playlist
# The rest of a playlist may list entries a little denser than its head (shorter names); an end
# estimated too late costs one read, too early a missed playlist.
END_ESTIMATE_MARGIN = 1.1
MASTER = "a master playlist, not a media playlist"
_clients: dict[str, redis.Redis] = {}


def recording_prefix(source: S3Location, live_path: str) -> str:
    return source.key(live_path)


def open_index(settings: Settings, source: S3Location, prefix: str) -> ArchiveIndex:
    """The recording's index, on the index Redis (RESOURCED_INDEX_REDIS_URL, else the job Redis;
    one client per URL, made on first use). The PDT zone is part of the recording's identity:
    summaries placed under another zone are misses, not wrong positions."""
    url = settings.archive_index_redis_url
    client = _clients.get(url)
    if client is None:
        # A cache fails fast: one quick retry, then the lookup goes on without it.
        client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, retry=Retry(NoBackoff(), 1)
        )
        _clients[url] = client
    return ArchiveIndex(
        client,
        recording_id(source.bucket, source.region, prefix, settings.pdt_zone),
        settings.archive_index_ttl_s,
        settings.archive_index_max_blob_kib * 1024,
    )


@dataclass
class Lookup:
    """One range looked up in one recording; counts what it read, for logs and tests."""

    store: ObjectStore
    source: S3Location
    prefix: str
    index: ArchiveIndex
    pdt_zone: tzinfo = UTC  # of PROGRAM-DATE-TIME values written without an offset
    head_reads: int = 0
    full_reads: int = 0
    from_index: int = 0
    playlist_heads: int = 0
    _heads: dict[str, bytes] = field(default_factory=dict)

    def listed(self) -> list[ListedObject]:
        folder = self.store.list_objects(self.source.bucket, self.prefix + "/", self.source.region)
        return [o for o in folder if o.key.endswith(".m3u8")]

    def head(self, obj: ListedObject) -> PlaylistSummary:
        """Where a playlist starts, from its first bytes; a small playlist is read whole here."""
        if obj.size == 0:  # a recorder's playlist just created; a ranged GET of it is refused
            return self._refused(obj, obj.etag, PlaylistError("empty playlist"))
        self.head_reads += 1
        try:
            data = self.store.get_bytes(
                self.source.bucket, obj.key, HEAD_BYTES, self.source.region, byte_range=(0, HEAD_BYTES)
            )
        except ObjectNotFound:
            return PlaylistSummary(obj.key, obj.etag, complete=True, error="deleted")
        except ObjectArchived as exc:
            raise SegmentsArchived([obj.key]) from exc
        except StorageError as exc:
            if "InvalidRange" not in str(exc):
                raise
            return PlaylistSummary(obj.key, obj.etag, complete=True, error="emptied since listed")
        if len(data) < HEAD_BYTES and is_master(text := data.decode("utf-8", "replace")):
            return self._master(obj, text)
        if len(data) < HEAD_BYTES:
            self._heads[obj.key] = data  # the whole playlist: parse it without another GET
            summary, _ = self._index_whole(obj, data.decode("utf-8", "replace").splitlines(), obj.etag)
            return summary
        whole_lines = data[: data.rfind(b"\n") + 1]  # the last line may be cut
        reader = MediaPlaylistReader(obj.key, self.prefix, self.pdt_zone)
        try:
            for line in whole_lines.decode("utf-8", "replace").split("\n"):
                reader.feed(line)
        except PlaylistError as exc:
            return self._refused(obj, obj.etag, exc)
        stats = reader.stats
        summary = PlaylistSummary(
            obj.key,
            obj.etag,
            complete=False,
            first_ms=stats.first_ms,
            est_end_ms=estimated_end(stats.first_ms, stats.end_ms, len(whole_lines), obj.size),
            absolute=stats.absolute,
        )
        self.index.save(summary)
        return summary

    def _master(self, obj: ListedObject, text: str) -> PlaylistSummary:
        """A master playlist: not media, but it says which renditions the recording has."""
        renditions = parse_master(text, obj.key, self.prefix)
        summary = PlaylistSummary(
            obj.key, obj.etag, complete=True, error=MASTER, renditions=[r.row() for r in renditions]
        )
        self.index.save(summary)
        return summary

    def playlist_info(self, key: str) -> ListedObject | None:
        """One playlist's listing entry by a HEAD (a rendition's, in its own subfolder): the
        cost of one request however many segments that subfolder holds; None when it is gone."""
        self.playlist_heads += 1
        try:
            return self.store.head(self.source.bucket, key, self.source.region).listed()
        except ObjectNotFound:
            return None

    def _refused(self, obj: ListedObject, etag: str, exc: Exception) -> PlaylistSummary:
        log.warning("skipping playlist", extra={"playlist": obj.key, "reason": str(exc)})
        summary = PlaylistSummary(obj.key, etag, complete=True, error=str(exc)[:200])
        self.index.save(summary)
        return summary

    def _index_whole(
        self, obj: ListedObject, lines: Iterable[str], etag: str, start_ms: float = 0, end_ms: float = -1
    ) -> tuple[PlaylistSummary, list[Segment]]:
        """Parse a whole playlist as it streams, pack it into the index, keep what overlaps."""
        reader = MediaPlaylistReader(obj.key, self.prefix, self.pdt_zone)
        packer = SegmentPacker(self.index.max_blob_bytes)
        wanted: list[Segment] = []
        ordered, previous_start = True, float("-inf")
        try:
            for segment in read_segments(lines, reader):
                packer.add(segment)
                ordered = ordered and segment.start_ms > previous_start
                previous_start = segment.start_ms
                if segment.overlaps(start_ms, end_ms):
                    wanted.append(segment)
        except (PlaylistError, TooLarge) as exc:
            return self._refused(obj, etag, exc), []
        stats, packed = reader.stats, packer.result()
        summary = PlaylistSummary(
            obj.key,
            etag,
            complete=True,
            first_ms=stats.first_ms,
            end_ms=stats.end_ms,
            absolute=stats.absolute,
            ended=stats.ended,
            segments=stats.segments,
            packed=packed is not None,
            ordered=ordered,
        )
        self.index.save(summary, packed)
        return summary, wanted

    def segments(
        self, obj: ListedObject, summary: PlaylistSummary, start_ms: float, end_ms: float
    ) -> list[Segment]:
        """The playlist's segments overlapping the range: from the index, else from S3."""
        if summary.complete and not summary.usable:
            return []
        packed = self.index.packed(summary) if summary.complete else None
        if packed is not None:
            try:
                self.from_index += 1
                return [s for s in unpack(packed, obj.key) if s.overlaps(start_ms, end_ms)]
            except (ValueError, TypeError, zlib.error):  # damaged or foreign: a miss
                log.warning("archive index entry unreadable, reading S3", extra={"playlist": obj.key})
        text = self._heads.pop(obj.key, None)
        if text is not None:
            lines: Iterable[str] = text.decode("utf-8", "replace").splitlines()
            etag = obj.etag
        else:
            self.full_reads += 1
            try:
                etag, lines = self.store.iter_lines(
                    self.source.bucket, obj.key, MAX_LINE_BYTES, self.source.region
                )
            except ObjectNotFound:
                return []  # deleted between listing and reading
            except ObjectArchived as exc:
                raise SegmentsArchived([obj.key]) from exc
        return self._index_whole(obj, lines, etag or obj.etag, start_ms, end_ms)[1]


def estimated_end(first_ms: float | None, end_ms: float | None, head_bytes: int, size: int) -> float | None:
    """Where a playlist ends at the latest, from its head: the rest of its bytes at the head's
    milliseconds per byte, with a margin. None when the head placed no entry."""
    if first_ms is None or end_ms is None or head_bytes <= 0:
        return None
    per_byte = (end_ms - first_ms) / head_bytes
    return end_ms + max(size - head_bytes, 0) * per_byte * END_ESTIMATE_MARGIN


def segments_for_range(
    store: ObjectStore,
    source: S3Location,
    live_path: str,
    start_ms: float,
    end_ms: float,
    index: ArchiveIndex | None = None,
    rendition: str = "",
    leading_ms: float = 0.0,
) -> list[Segment]:
    """The segments covering [start_ms, end_ms), in timeline order, duplicates left out; of one
    rendition where the recording is an ABR ladder (`rendition` names it, else the best). With
    `leading_ms`, also the segment continuing the range that starts within it after the end
    (an export passes playlists.LEADING_MS: that segment may hold the range's last pictures)."""
    prefix = recording_prefix(source, live_path)
    settings = store.settings
    index = index or open_index(settings, source, prefix)
    lookup = Lookup(store, source, prefix, index, settings.pdt_tzinfo)
    listed = lookup.listed()
    cached = lookup.index.summaries()
    locator = Locator(
        listed, known_unchanged(lookup, listed, cached), lookup.head, settings.archive_clock_skew_s * 1000
    )
    locator.listed = recording_playlists(lookup, locator, cached, rendition)
    chosen = locator.choose(start_ms, end_ms)
    found = [lookup.segments(o, locator.summary(o), start_ms, end_ms + leading_ms) for o in chosen]
    log.info(
        "archive lookup",
        extra={
            "recording": prefix,
            "playlists": len(listed),
            "chosen": len(chosen),
            "head_reads": lookup.head_reads,
            "full_reads": lookup.full_reads,
            "from_index": lookup.from_index,
        },
    )
    return covering(merge_timelines(found), start_ms, end_ms, leading_ms)


def known_unchanged(
    lookup: Lookup, listed: list[ListedObject], cached: dict[str, PlaylistSummary]
) -> dict[str, PlaylistSummary]:
    """The index's entries of the folder's playlists as listed now; entries of playlists deleted
    or replaced since are forgotten. Entries of playlists in subfolders (renditions) are judged
    when their folder is listed (`recording_playlists`)."""
    by_key = {o.key: o for o in listed}
    top = [s for k, s in cached.items() if "/" not in k[len(lookup.prefix) + 1 :]]
    lookup.index.forget([s for s in top if s.key not in by_key or by_key[s.key].etag != s.etag])
    return {k: s for k, s in cached.items() if k in by_key and by_key[k].etag == s.etag}


def renditions_of(lookup: Lookup, locator: Locator) -> list[Rendition]:
    """The recording's renditions, best first; none where it has no master playlist. Small
    playlists the index does not know yet are read once (whole, and indexed) to find masters."""
    masters: list[list[Rendition]] = []
    for obj in locator.listed:
        known = locator.known.get(obj.key)
        if known is None and obj.size <= MASTER_MAX_BYTES:
            known = locator.summary(obj)
        if known is not None and known.renditions:
            masters.append([Rendition.from_row(row) for row in known.renditions])
    return ladder(masters)


def recording_playlists(
    lookup: Lookup, locator: Locator, cached: dict[str, PlaylistSummary], wanted: str
) -> list[ListedObject]:
    """The media playlists that form the recording: all of the folder's where it has no master
    playlist, else ONE rendition's (renditions are never spliced together), found in the folder
    or in its subfolder, with the folder's playlists that no master names."""
    renditions = renditions_of(lookup, locator)
    if not renditions:
        if wanted:
            log.info("recording has no renditions, Rendition ignored", extra={"recording": lookup.prefix})
        return locator.listed
    chosen = choose(renditions, wanted, lookup.prefix)
    others = {r.playlist for r in renditions} - {r.playlist for r in chosen}
    playlists = [o for o in locator.listed if o.key not in others]
    present = {o.key for o in playlists}
    for rendition in chosen:
        if rendition.playlist in present:
            continue
        # In a subfolder: look at it, and trust the index only for what is unchanged since.
        obj = lookup.playlist_info(rendition.playlist)
        old = cached.get(rendition.playlist)
        if obj is not None and old is not None and old.etag == obj.etag:
            locator.known[obj.key] = old
        elif old is not None:
            lookup.index.forget([old])
        if obj is not None:
            playlists.append(obj)
            present.add(obj.key)
    log.info("rendition chosen", extra={"recording": lookup.prefix, "rendition": chosen[0].name})
    return playlists
