"""The folder listing recording-spans pages share, kept in Redis, so that no page but a
recording's very first waits for a LIST of the whole folder.

The folder LIST is the one request of a spans page whose size grows with the archive (720
hourly playlists: 720 entries, where S3 answers 1,000 per request and a 1-minute recording
needs one). A page uses the kept listing:

- made within LISTING_TTL_S (a client walking a recording's pages): as it is;
- older (a walk starting minutes or hours later, or a listing stamped by a node whose clock is
  ahead): after probing where a recording changes, one LIST of at most PROBE_KEYS entries from
  each of: the last playlist in natural name order (where a recorder names the next one), the
  last written, and the playlists the index knows as live (read whole, no #EXT-X-ENDLIST). Those
  playlists' growth and the playlists named after the last one show on this page. Where the
  last playlist's own segments fill its probe (segments beside the playlists: `h0719.m3u8`,
  `h07190.ts`...), one more LIST starts past every name beginning with its stem. The spans task
  then lists the whole folder again after it has answered (`relist_if_stale`), one task per
  recording at a time; a probe that leaves no playlist LISTs the folder before answering;
- none (a recording's first page, a listing unused for LISTING_KEEP_S, or a Redis that lost it):
  the full LIST before answering, kept for the pages after it.

What a kept listing shows late, on the answer after the relist instead of the first: a playlist
added, replaced or deleted elsewhere than where the probes look (a backfill, retention deleting
old hours, a new unpadded name that sorts before the last: `h10.m3u8` before `h9.m3u8`; a
replaced playlist is answered from its previous version until then). A segment deleted since
shows as a gap at once (the page LISTs its slice of the segment folder). A rendition in a
subfolder of an ABR ladder costs each page one HEAD (workers/archive/ranges.recording_playlists).
Exports never use the kept listing: each lookup LISTs the folder.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import zlib
from collections.abc import Callable, Collection
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
LIVE_PROBES = 2  # live playlists probed besides the last by name and the last written
# One relist at a time per recording. A relist that fails (a folder too large to LIST within the
# task's time limit) leaves it to expire: the next one is tried this much later, not at once.
RELIST_LOCK_S = 60
PLAYLIST_SUFFIX = ".m3u8"
PAST_STEM = "\U0010ffff"  # sorts after every name that begins with a stem (the highest code point)
# Give the relist lock back only if it is still this task's (one past RELIST_LOCK_S is another's).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Kept:
    """A folder's playlists as one full LIST saw them, and when that LIST started."""

    listed_at: float
    rows: list[ListedObject]


def encode(kept: Kept) -> bytes:
    """The stamp first, on a line of its own: `relist_if_stale` reads just that (GETRANGE)."""
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


def probe_starts(rows: list[ListedObject], live: Collection[str]) -> list[str]:
    """Where a recording changes between two LISTs: the last playlist by natural name order,
    the last written, and up to LIVE_PROBES of the playlists known to be live, latest first."""
    starts = [
        max(rows, key=lambda o: natural_key(o.key)).key,
        max(rows, key=lambda o: (o.last_modified, natural_key(o.key))).key,
    ]
    growing = sorted((o for o in rows if o.key in live), key=lambda o: o.last_modified, reverse=True)
    starts += [o.key for o in growing if o.key not in starts][:LIVE_PROBES]
    return list(dict.fromkeys(starts))


class KeptListing:
    """One recording folder's kept listing, for one spans page or the relist after it. A Redis
    failure costs a LIST, never an answer."""

    def __init__(self, lookup: Lookup, clock: Callable[[], float] = time.time) -> None:
        self.lookup, self.clock = lookup, clock
        self.client = lookup.index.client
        self.name = keys.archive_listing(lookup.index.recording)
        self.lock = keys.archive_relisting(lookup.index.recording)

    def playlists(self, live: Collection[str] = ()) -> list[ListedObject]:
        """The folder's playlists for a page, as the module docstring says; `live`: the keys the
        index knows as live playlists (probed when the listing is stale)."""
        kept = self._load()
        if kept is None:
            return self._relist()
        if self._fresh(kept.listed_at):
            return kept.rows
        probed = self._probed(kept.rows, live)
        return probed or self._relist()  # every kept playlist gone: look at the whole folder

    def relist_if_stale(self) -> bool:
        """After a page has answered: LIST the whole folder again where the kept listing is stale,
        unless another task is doing it (or did, and failed, within RELIST_LOCK_S). True when
        this call listed."""
        if self.client is None:
            return False
        try:
            head = self.client.getrange(self.name, 0, 31)
            stamp = float(head.partition(b"\n")[0]) if isinstance(head, bytes) and head else None
        except (redis.RedisError, ValueError):
            return False
        if stamp is None or self._fresh(stamp):
            return False
        token = secrets.token_hex(8)
        try:
            if not self.client.set(self.lock, token, nx=True, ex=RELIST_LOCK_S):
                return False
        except redis.RedisError:
            return False
        self._relist()  # raising (storage, the time limit) leaves the lock to expire
        with contextlib.suppress(redis.RedisError):
            self.client.eval(_RELEASE, 1, self.lock, token)
        return True

    def _fresh(self, listed_at: float) -> bool:
        """Made within LISTING_TTL_S by this node's clock. A stamp from the future (a node whose
        clock is ahead) is stale, so skew costs a probe and a relist, never a frozen listing."""
        return 0 <= self.clock() - listed_at <= LISTING_TTL_S

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
        if self.client is not None:
            with contextlib.suppress(redis.RedisError):
                if listed:
                    self.client.set(self.name, encode(Kept(started, listed)), ex=LISTING_KEEP_S)
                else:  # nothing there (now): keep nothing, so a recording starting shows at once
                    self.client.delete(self.name)
        return listed

    def _probed(self, rows: list[ListedObject], live: Collection[str]) -> list[ListedObject]:
        """`rows` brought up to date where a recording changes (`probe_starts`)."""
        if not rows:
            return rows
        for key in probe_starts(rows, live):
            rows, filled = self._probe(rows, key, key[:-1])  # just before the key: it is listed too
            if filled:  # its own segments fill the page: go on past every name beginning with its stem
                rows, _ = self._probe(rows, key, key.removesuffix(PLAYLIST_SUFFIX) + PAST_STEM)
        return rows

    def _probe(self, rows: list[ListedObject], key: str, after: str) -> tuple[list[ListedObject], bool]:
        """`rows` with what one LIST after `after` found, and whether that LIST was cut short by
        `key`'s own segments alone (named after its stem, beside it: a LIST past the stem goes on
        to the next playlist; segments named otherwise would fill that LIST too)."""
        source = self.lookup.source
        found, covered_to = self.lookup.store.list_slice(
            source.bucket, self.lookup.prefix + "/", after, PROBE_KEYS, source.region
        )
        stem = key.removesuffix(PLAYLIST_SUFFIX)
        own = all(
            o.key == key or (o.key.startswith(stem) and not o.key.endswith(PLAYLIST_SUFFIX)) for o in found
        )
        return merged(rows, after, found, covered_to), covered_to is not None and own
