"""The folder listing recording-spans pages share, kept in Redis, so that no page but a
recording's very first waits for a LIST of the whole folder.

The folder LIST is the one request of a spans page whose size grows with the archive (720
hourly playlists: 720 entries, where S3 answers 1,000 per request and a 1-minute recording
needs one). A page uses the kept listing:

- made within LISTING_TTL_S (a client walking a recording's pages): as it is;
- older (a walk starting minutes or hours later): after probing the folder's end, one LIST of
  at most PROBE_KEYS entries from the last playlist in name order, and one from the last written
  where that is another: a live playlist's growth and the new playlists a recorder names after
  the last one show on this page. The spans task then lists the whole folder again after it has
  answered (`relist_if_stale`), one task per recording at a time;
- none (a recording's first page, a listing unused for LISTING_KEEP_S, or a Redis that lost it):
  the full LIST before answering, kept for the pages after it.

What a kept listing shows late, on the answer after the relist instead of the first: a playlist
added, replaced or deleted elsewhere than at the folder's end (a backfill, retention deleting old
hours, a new unpadded name that sorts before the last: `h10.m3u8` before `h9.m3u8`). A chosen
playlist's content is still checked by its ETag, and a segment deleted since shows as a gap (the
page LISTs its slice of the segment folder). Exports never use it: each lookup LISTs the folder.
"""

from __future__ import annotations

import contextlib
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import redis

from tasks.platform import keys
from tasks.storage import ListedObject
from workers.archive.locate import natural_key
from workers.archive.ranges import Lookup

# A listing this young is used as it is: the pages of one walk follow each other within it.
LISTING_TTL_S = 15
# A listing unused this long is dropped; the next page LISTs the folder before answering.
# About 40 bytes a playlist, compressed (720 playlists: 29 KiB).
LISTING_KEEP_S = 24 * 3600
PROBE_KEYS = 16  # one small LIST: the last playlist, and what a recorder wrote after it
RELIST_LOCK_S = 60  # one relist at a time per recording; a crashed one frees it by expiry
PLAYLIST_SUFFIX = ".m3u8"


@dataclass(frozen=True)
class Kept:
    """A folder's playlists as one full LIST saw them, and when that LIST started."""

    listed_at: float
    rows: list[ListedObject]


def encode(kept: Kept) -> bytes:
    rows = [[o.key, o.etag, o.size, o.last_modified] for o in kept.rows]
    packed = zlib.compress(json.dumps(rows, separators=(",", ":")).encode())
    return f"{kept.listed_at:.3f}\n".encode() + packed


def decode(raw: bytes) -> Kept:
    """Raises ValueError, TypeError or zlib.error for a value this module did not write (the
    listing of an older version held only the packed rows): the caller LISTs instead."""
    stamp, _, packed = raw.partition(b"\n")
    rows = json.loads(zlib.decompress(packed))
    return Kept(float(stamp), [ListedObject(str(k), str(e), int(n), float(t)) for k, e, n, t in rows])


def merged(
    rows: list[ListedObject], start_after: str, found: list[ListedObject], covered_to: str | None
) -> list[ListedObject]:
    """`rows` with the names a LIST after `start_after` covered (up to `covered_to`, None: to
    the folder's end) replaced by what it found: changed ones updated, new ones added, the ones
    it did not find gone."""

    def judged(key: str) -> bool:
        return key > start_after and (covered_to is None or key <= covered_to)

    fresh = [o for o in found if o.key.endswith(PLAYLIST_SUFFIX)]
    return sorted([o for o in rows if not judged(o.key)] + fresh, key=lambda o: o.key)


class KeptListing:
    """One recording folder's kept listing, for one spans page or the relist after it. A Redis
    failure costs a LIST, never an answer."""

    def __init__(self, lookup: Lookup, clock: Callable[[], float] = time.time) -> None:
        self.lookup, self.clock = lookup, clock
        self.client = lookup.index.client
        self.name = keys.archive_listing(lookup.index.recording)
        self.lock = keys.archive_relisting(lookup.index.recording)

    def playlists(self) -> list[ListedObject]:
        """The folder's playlists for a page, as the module docstring says."""
        kept = self._load()
        if kept is None:
            return self._relist()
        if self.clock() - kept.listed_at <= LISTING_TTL_S:
            return kept.rows
        return self._probed(kept.rows)

    def relist_if_stale(self) -> bool:
        """After a page has answered: LIST the whole folder again where the kept listing is older
        than LISTING_TTL_S, unless another task is doing it. True when this call listed."""
        kept = self._load()
        if self.client is None or kept is None or self.clock() - kept.listed_at <= LISTING_TTL_S:
            return False
        try:
            if not self.client.set(self.lock, "1", nx=True, ex=RELIST_LOCK_S):
                return False
        except redis.RedisError:
            return False
        try:
            self._relist()
        finally:
            # Only a dedupe: a relist outliving RELIST_LOCK_S and a second one both just LIST.
            with contextlib.suppress(redis.RedisError):
                self.client.delete(self.lock)
        return True

    def _load(self) -> Kept | None:
        if self.client is None:
            return None
        try:
            raw = self.client.get(self.name)
            return decode(raw) if isinstance(raw, bytes) else None
        except (redis.RedisError, ValueError, TypeError, zlib.error):
            return None

    def _relist(self) -> list[ListedObject]:
        started = self.clock()  # what changes during the LIST may be missed: it counts as older
        listed = self.lookup.listed()
        if listed and self.client is not None:  # nothing there yet: a recording starting now shows at once
            with contextlib.suppress(redis.RedisError):
                self.client.set(self.name, encode(Kept(started, listed)), ex=LISTING_KEEP_S)
        return listed

    def _probed(self, rows: list[ListedObject]) -> list[ListedObject]:
        """`rows` brought up to date at the folder's end: from the last playlist by name (where a
        recorder names the next one) and the last written (a live one, whatever its name)."""
        if not rows:
            return rows
        starts = {
            max(rows, key=lambda o: natural_key(o.key)).key,
            max(rows, key=lambda o: (o.last_modified, natural_key(o.key))).key,
        }
        source, folder = self.lookup.source, self.lookup.prefix + "/"
        for key in sorted(starts):
            after = key[:-1]  # sorts just before the key: the LIST includes it
            found, covered_to = self.lookup.store.list_slice(
                source.bucket, folder, after, PROBE_KEYS, source.region
            )
            rows = merged(rows, after, found, covered_to)
        return rows
