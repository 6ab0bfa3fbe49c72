"""A streaming reader of HLS media playlists: one line in, at most one segment out.

It keeps no list of segments, so memory does not grow with the playlist (a month in one
playlist streams through like an hour), and it gathers the few facts the archive index keeps
of a whole playlist (`PlaylistStats`). It follows what the `m3u8` library did before it:
#EXT-X-PROGRAM-DATE-TIME carried forward by #EXTINF, #EXT-X-DISCONTINUITY, #EXT-X-BYTERANGE
with implied offsets, #EXT-X-MAP, percent-decoded URIs, refused entries kept as gaps, master
playlists and bad #EXTINF durations refused. Packagers' tags are read too: #EXT-X-GAP makes its
entry a gap (its object is never read, whatever it holds); #EXT-X-KEY METHOD=AES-128 gives each
entry its key object and IV (explicit, else the entry's media sequence number, RFC 8216 5.2),
METHOD=NONE ends encryption, and an entry whose key cannot be used (SAMPLE-AES, a key URI outside
the recording's folder, another KEYFORMAT) is refused with the reason: a gap, never ciphertext.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from workers.archive.model import ByteRange, MasterPlaylist, PlaylistError, Segment, resolve_segment_key

MAX_SEGMENT_MS = 3600 * 1000  # an #EXTINF longer than an hour is a broken playlist, not a segment
MASTER_TAGS = ("#EXT-X-STREAM-INF", "#EXT-X-I-FRAME-STREAM-INF", "#EXT-X-IMAGE-STREAM-INF")
ATTRIBUTE = re.compile(r'([A-Za-z0-9-]+)=("[^"]*"|[^,]*)')
GAP_REASON = "the packager marks it as a gap (#EXT-X-GAP)"


def attributes_of(line: str) -> dict[str, str]:
    """A tag's attribute list (`#TAG:A=1,B="x,y"`), names upper-cased, quotes removed."""
    return {k.upper(): v.strip('"') for k, v in ATTRIBUTE.findall(line.partition(":")[2])}


@dataclass(frozen=True)
class KeyState:
    """The #EXT-X-KEY in force: an AES-128 key object and explicit IV, or why entries under it
    cannot be decrypted (`refused`)."""

    key: str | None = None
    iv: bytes | None = None
    refused: str = ""


def key_state(line: str, playlist_key: str, prefix: str) -> KeyState | None:
    """What an #EXT-X-KEY line puts in force; None for METHOD=NONE (clear entries follow)."""
    attributes = attributes_of(line)
    method = attributes.get("METHOD", "").upper()
    if method == "NONE":
        return None
    if method != "AES-128":
        return KeyState(refused=f"{method or 'unnamed'} encryption (#EXT-X-KEY) is not supported")
    if attributes.get("KEYFORMAT", "identity") != "identity":
        return KeyState(refused=f"key format {attributes['KEYFORMAT'][:60]!r} is not supported")
    iv: bytes | None = None
    if "IV" in attributes:
        text = attributes["IV"].lower().removeprefix("0x")
        try:
            iv = bytes.fromhex(text.rjust(32, "0"))
        except ValueError:
            iv = None
        if iv is None or len(iv) != 16:
            return KeyState(refused="its AES-128 IV is not 128 bits of hex")
    try:
        key = resolve_segment_key(playlist_key, attributes.get("URI", ""), prefix, what="key")
    except PlaylistError as exc:
        return KeyState(refused=f"its AES-128 key is not readable: {exc}")
    return KeyState(key=key, iv=iv)


@dataclass
class PlaylistStats:
    """What the index keeps of a whole playlist, gathered while it streams past."""

    segments: int = 0
    first_ms: float | None = None  # start of the first entry
    end_ms: float | None = None  # latest end of any entry
    absolute: bool = False  # the first entry is placed by PROGRAM-DATE-TIME (epoch ms)
    ended: bool = False  # #EXT-X-ENDLIST: the recorder will not append to it


class MediaPlaylistReader:
    """Feed it lines in order; `feed` returns the segment a line completes, if any."""

    def __init__(self, playlist_key: str, recording_prefix: str, pdt_zone: tzinfo = UTC) -> None:
        self.playlist_key, self.prefix = playlist_key, recording_prefix
        self.pdt_zone = pdt_zone  # of a PROGRAM-DATE-TIME written without an offset
        self.stats = PlaylistStats()
        self.lines = 0
        self._running_ms = 0.0  # the timeline without PROGRAM-DATE-TIME: #EXTINF summed from 0
        self._pdt_ms: float | None = None  # PROGRAM-DATE-TIME carried forward
        self._duration_ms: float | None = None  # an #EXTINF waiting for its URI
        self._byterange: str | None = None
        self._discontinuity = False
        self._map: tuple[str, str | None] | None = None  # #EXT-X-MAP in force: URI, BYTERANGE
        self._next_offset: dict[str, int] = {}  # a BYTERANGE without @offset follows the previous
        self._sequence = 0  # the next entry's media sequence number (#EXT-X-MEDIA-SEQUENCE)
        self._key: KeyState | None = None  # the #EXT-X-KEY in force; None: clear
        self._gap = False  # an #EXT-X-GAP precedes the next URI

    def feed(self, raw: str) -> Segment | None:
        self.lines += 1
        if self.lines == 1 and not raw.lstrip("\ufeff").startswith("#EXTM3U"):
            raise PlaylistError("not an HLS playlist (no #EXTM3U)")
        line = raw.strip()
        if not line:
            return None
        if not line.startswith("#"):
            return self._segment(line) if self._duration_ms is not None else None
        self._tag(line)
        return None

    def _tag(self, line: str) -> None:
        if line.startswith("#EXT-X-BYTERANGE"):
            self._byterange = line.partition(":")[2]
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME"):
            self._pdt_ms = program_date_time_ms(line.partition(":")[2], self.pdt_zone)
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE"):
            return
        elif line.startswith("#EXT-X-DISCONTINUITY"):
            self._discontinuity = True
        elif line.startswith("#EXTINF"):
            try:
                self._duration_ms = float(line.partition(":")[2].split(",", 1)[0]) * 1000
            except ValueError as exc:
                raise PlaylistError(f"unparseable playlist: bad #EXTINF: {line[:80]!r}") from exc
        elif line.startswith("#EXT-X-GAP"):
            self._gap = True
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE"):
            try:
                self._sequence = int(line.partition(":")[2])
            except ValueError as exc:
                raise PlaylistError(
                    f"unparseable playlist: bad #EXT-X-MEDIA-SEQUENCE: {line[:80]!r}"
                ) from exc
        elif line.startswith("#EXT-X-KEY"):
            self._key = key_state(line, self.playlist_key, self.prefix)
        elif line.startswith(MASTER_TAGS):
            raise MasterPlaylist("a master playlist, not a media playlist")
        elif line.startswith("#EXT-X-ENDLIST"):
            self.stats.ended = True
        elif line.startswith("#EXT-X-MAP"):
            attributes = attributes_of(line)
            self._map = (attributes.get("URI", ""), attributes.get("BYTERANGE"))

    def _segment(self, uri: str) -> Segment:
        duration_ms = self._duration_ms or 0.0
        if not 0 < duration_ms <= MAX_SEGMENT_MS or math.isnan(duration_ms):
            raise PlaylistError(f"segment {uri!r} has an invalid duration")
        absolute = self._pdt_ms is not None
        start_ms = self._pdt_ms if self._pdt_ms is not None else self._running_ms
        if self._pdt_ms is not None:
            self._pdt_ms += duration_ms
        self._running_ms += duration_ms
        refused = ""
        try:
            key = resolve_segment_key(self.playlist_key, uri, self.prefix)
        except PlaylistError as exc:
            key, refused = uri, str(exc)
        init_key, init_range = self._init_section()
        if init_key is None and self._map is not None and not refused:
            refused = "its initialization section (#EXT-X-MAP) is outside the recording's folder"
        aes_key, aes_iv = None, None
        if self._key is not None and not refused:
            refused = self._key.refused
            if init_key is not None and not refused:
                refused = "AES-128 with an initialization section (#EXT-X-MAP) is not supported"
            aes_key = self._key.key
            aes_iv = self._key.iv or self._sequence.to_bytes(16, "big")
        if self._gap:
            refused = GAP_REASON
        if refused:
            aes_key, aes_iv = None, None
        byte_range = byte_range_of(self._byterange, self._next_offset.get(key, 0))
        if byte_range is not None:
            self._next_offset[key] = byte_range.end
        segment = Segment(
            key=key,
            start_ms=start_ms,
            duration_ms=duration_ms,
            discontinuity=self._discontinuity,
            playlist=self.playlist_key,
            byte_range=byte_range,
            init_key=init_key,
            init_range=init_range,
            refused=refused,
            aes_key=aes_key,
            aes_iv=aes_iv,
        )
        self._duration_ms, self._byterange, self._discontinuity, self._gap = None, None, False, False
        self._sequence += 1
        self._count(segment, absolute)
        return segment

    def _count(self, segment: Segment, absolute: bool) -> None:
        stats = self.stats
        if stats.segments == 0:
            stats.first_ms, stats.absolute = segment.start_ms, absolute
        stats.segments += 1
        stats.end_ms = segment.end_ms if stats.end_ms is None else max(stats.end_ms, segment.end_ms)

    def _init_section(self) -> tuple[str | None, ByteRange | None]:
        """The #EXT-X-MAP in force: its key and byte range; (None, None) without one or when it
        points outside the recording (the segment is then refused)."""
        if self._map is None or not self._map[0]:
            return None, None
        try:
            key = resolve_segment_key(self.playlist_key, self._map[0], self.prefix)
        except PlaylistError:
            return None, None
        return key, byte_range_of(self._map[1], 0)


def program_date_time_ms(value: str, zone: tzinfo) -> float:
    """A PROGRAM-DATE-TIME in epoch ms. A value without an offset (some cameras write local time
    bare) is read in `zone` (RESOURCED_PDT_ZONE), never in the host's zone: a naive datetime's
    timestamp() would make the timeline move with the worker's TZ."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise PlaylistError(f"unparseable playlist: bad PROGRAM-DATE-TIME: {exc}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp() * 1000


def byte_range_of(spec: str | None, implied_start: int) -> ByteRange | None:
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


def read_segments(lines: Iterable[str], reader: MediaPlaylistReader) -> Iterator[Segment]:
    """Every segment of a playlist's lines, in playlist order, as the lines arrive."""
    for line in lines:
        segment = reader.feed(line)
        if segment is not None:
            yield segment
    if reader.lines == 0:
        raise PlaylistError("not an HLS playlist (empty)")
