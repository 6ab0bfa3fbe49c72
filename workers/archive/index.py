"""The archive index in Redis: per recording, what is known of each playlist version.

One HASH per recording maps a playlist's key to its summary (ETag, span, ended or live, segment
count); one STRING per playlist holds the packed segment list of the version it was read at,
prefixed with that version's ETag. A replaced or appended playlist no longer matches its entries:
they are dropped on the next lookup, and a list of another version is a miss. One list per
playlist whatever its history, so a live playlist read by many exports costs one list.
Everything expires (`archive_index_ttl_s`, refreshed on use).

It is a cache: a Redis error or a missing entry is a miss, never a failed export. After the
first error the index stops talking to Redis for the rest of the lookup.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from typing import Any

import redis

from tasks.platform import keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlaylistSummary:
    """One playlist version as the index knows it: from its head only (`complete` False: just
    where it starts) or from a full read (span, segment count, ENDLIST, packed segments)."""

    key: str
    etag: str
    complete: bool
    first_ms: float | None = None
    end_ms: float | None = None
    # From a head only: where the playlist ends at the latest, judged from its size (a long
    # playlist that started before its neighbours still counts for a range it reaches).
    est_end_ms: float | None = None
    absolute: bool = False  # placed by PROGRAM-DATE-TIME; else its timeline starts at 0
    ended: bool = False  # #EXT-X-ENDLIST; a live playlist is re-read when its ETag changes
    segments: int = 0
    packed: bool = False  # its segment list is in the index
    # Every entry starts strictly after the one before it (no PROGRAM-DATE-TIME going back):
    # its packed list can be read up to a point and stopped (a recording-spans page reads only
    # the entries it shows). False for summaries written before it existed: read whole.
    ordered: bool = False
    error: str = ""  # why it is not usable (not a playlist, a master playlist...)
    # A master playlist's variants (workers/archive/variants.Rendition rows): which renditions
    # the recording has, known without reading the master again.
    renditions: list[list[object]] = dataclass_field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.error

    def overlaps(self, start_ms: float, end_ms: float) -> bool:
        """Exact for a complete summary with segments."""
        if self.first_ms is None or self.end_ms is None or self.error:
            return False
        return self.end_ms > start_ms and self.first_ms < end_ms

    def may_reach(self, start_ms: float, end_ms: float) -> bool:
        """A head-only summary whose estimated span overlaps the range: worth reading whole."""
        if self.complete or self.error or self.first_ms is None or self.est_end_ms is None:
            return False
        return self.est_end_ms > start_ms and self.first_ms < end_ms

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> PlaylistSummary:
        return cls(**json.loads(raw))


FORMAT = 3  # bump when what a summary or a packed list means changes: old entries then miss


def recording_id(bucket: str, region: str | None, prefix: str, pdt_zone: str = "UTC") -> str:
    """A short fixed-length name for one recording's folder (and the index format) in the layout.
    A zone other than UTC for offset-less PROGRAM-DATE-TIME is part of it: positions differ."""
    zone = "" if pdt_zone.upper() == "UTC" else f"\0{pdt_zone}"
    return hashlib.sha256(f"{FORMAT}\0{region or ''}\0{bucket}\0{prefix}{zone}".encode()).hexdigest()[:20]


def _playlist_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _tagged(etag: str) -> bytes:
    """The prefix naming the playlist version a packed list was read from."""
    return etag.encode() + b"\0"


class ArchiveIndex:
    """One recording's entries; `client` None is an index that remembers nothing."""

    def __init__(self, client: redis.Redis | None, recording: str, ttl_s: int, max_blob_bytes: int) -> None:
        self.client, self.recording = client, recording
        self.ttl_s, self.max_blob_bytes = ttl_s, max_blob_bytes
        self.playlists_key = keys.archive_playlists(recording)

    def _failed(self, exc: Exception) -> None:
        log.warning("archive index unavailable, reading S3", extra={"reason": str(exc)})
        self.client = None

    def summaries(self) -> dict[str, PlaylistSummary]:
        if self.client is None:
            return {}
        try:
            raw: dict[Any, Any] = self.client.hgetall(self.playlists_key)
            self.client.expire(self.playlists_key, self.ttl_s)
        except redis.RedisError as exc:
            self._failed(exc)
            return {}
        found: dict[str, PlaylistSummary] = {}
        for field, value in raw.items():
            try:
                summary = PlaylistSummary.from_json(value)
            except (ValueError, TypeError):
                continue  # written by another version of the code: a miss
            found[field.decode() if isinstance(field, bytes) else str(field)] = summary
        return found

    def save(self, summary: PlaylistSummary, packed: bytes | None = None) -> None:
        """The blob first, then the summary that points at it: a reader never sees a summary
        claiming a blob that was not written (one that expired or was evicted is a miss)."""
        if self.client is None:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            if packed is not None:
                pipe.set(self._blob_key(summary), _tagged(summary.etag) + packed, ex=self.ttl_s)
            pipe.hset(self.playlists_key, summary.key, summary.to_json())
            pipe.expire(self.playlists_key, self.ttl_s)
            pipe.execute()
        except redis.RedisError as exc:
            self._failed(exc)

    def forget(self, stale: list[PlaylistSummary]) -> None:
        """Entries of playlists deleted or replaced since they were indexed."""
        if self.client is None or not stale:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hdel(self.playlists_key, *[s.key for s in stale])
            blobs = [self._blob_key(s) for s in stale if s.packed]
            if blobs:
                pipe.delete(*blobs)
            pipe.execute()
        except redis.RedisError as exc:
            self._failed(exc)

    def packed(self, summary: PlaylistSummary) -> bytes | None:
        if self.client is None or not summary.packed:
            return None
        try:
            blob_key = self._blob_key(summary)
            blob = self.client.get(blob_key)
            if blob is not None:
                self.client.expire(blob_key, self.ttl_s)
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        tag = _tagged(summary.etag)
        if not isinstance(blob, bytes) or not blob.startswith(tag):
            return None  # evicted, or written for another version of the playlist
        return blob[len(tag) :]

    def _blob_key(self, summary: PlaylistSummary) -> str:
        return keys.archive_segments(self.recording, _playlist_id(summary.key))

    def memory_bytes(self) -> int:
        """Redis's MEMORY USAGE of this recording's keys (for the benchmark and operators)."""
        if self.client is None:
            return 0
        total = int(self.client.memory_usage(self.playlists_key) or 0)
        for summary in self.summaries().values():
            if summary.packed:
                total += int(self.client.memory_usage(self._blob_key(summary)) or 0)
        return total
