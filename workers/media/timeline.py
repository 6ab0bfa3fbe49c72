"""Downloaded segments -> one stream of packets on a continuous output clock.

Each segment is opened on its own, so a corrupt one costs only its own time. A segment whose
first timestamp follows on from the previous one (modulo the 33-bit MPEG-TS wrap) keeps the
source's exact spacing; after an #EXT-X-DISCONTINUITY, a timestamp jump, a missing segment or
a hole in the timeline, the next segment's first picture follows the previous last picture, so
gaps are cut out of the clip instead of becoming frozen frames. Segments are anchored on their
first video packet: a playlist's PROGRAM-DATE-TIME names the time of the segment's first picture.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from workers.archive.playlists import Segment
from workers.media.parameter_sets import parameter_sets

log = logging.getLogger(__name__)

CLOCK = 90_000  # output ticks per second: the MPEG-TS clock, so no precision is lost
WRAP = 1 << 33
CONTINUITY_TOLERANCE = CLOCK  # EXTINF rounding and PDT jitter stay well under a second
DEFAULT_FRAME_TICKS = CLOCK // 25
SUPERSEDED_EPSILON_MS = 0.01  # timeline positions are exact to the 90 kHz tick; this absorbs float noise
MAX_EARLY_AUDIO = 256  # audio packets read before a segment's first picture; more is no video
# The first segment is probed fully: its streams become the MP4's tracks. Later segments only
# need what the MPEG-TS headers and the SPS say (codec, size, extradata), which a light probe
# reads without decoding pictures: 2-3x faster per segment on 1080p.
FULL_PROBE = {"analyzeduration": "2000000", "probesize": "5000000"}
LIGHT_PROBE = {"analyzeduration": "0", "probesize": "100000"}


@dataclass(frozen=True)
class SegmentInput:
    """A segment of the range and where its bytes are; `path` None when it could not be read.
    `container` is the segment already opened (probed) by the prefetcher, when it did so."""

    segment: Segment
    path: Path | None
    reason: str = ""
    container: av.container.InputContainer | None = None


def open_segment(path: Path, first: bool) -> av.container.InputContainer | None:
    """Open and probe a segment; None if it is unreadable. Runs in prefetch threads."""
    try:
        return av.open(str(path), options=dict(FULL_PROBE if first else LIGHT_PROBE))
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class StreamParams:
    """What must stay the same for packets to be copied into one MP4 track: what decoding
    depends on (codec, profile, size, pixel format, the parameter sets' content), not the
    extradata's bytes (see workers.media.parameter_sets)."""

    kind: str
    codec: str
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0
    profile: str = ""
    pix_fmt: str = ""
    parameter_sets: frozenset[bytes] | None = None

    def describe(self) -> str:
        if self.kind == "video":
            return f"{self.codec} {self.profile or '?'} {self.width}x{self.height} {self.pix_fmt or '?'}"
        return f"{self.codec} {self.sample_rate} Hz {self.channels} ch"

    def same_as(self, other: StreamParams) -> bool:
        """Equal where both are known; a light probe leaves audio rate and channels at 0."""
        if (self.codec, self.width, self.height) != (other.codec, other.width, other.height):
            return False
        pairs = (
            (self.sample_rate, other.sample_rate),
            (self.channels, other.channels),
            (self.profile, other.profile),
            (self.pix_fmt, other.pix_fmt),
        )
        if any(mine and theirs and mine != theirs for mine, theirs in pairs):
            return False
        mine_sets, their_sets = self.parameter_sets, other.parameter_sets
        return mine_sets is None or their_sets is None or mine_sets == their_sets


def _usable(container: av.container.InputContainer) -> bool:
    """Probed far enough: a video stream with its picture size, or audio and no video at all."""
    if any(s.codec_context.width for s in container.streams.video):
        return True
    return not container.streams.video and bool(container.streams.audio)


def stream_params(stream: av.VideoStream | av.AudioStream) -> StreamParams:
    if isinstance(stream, av.VideoStream):
        video = stream.codec_context
        return StreamParams(
            "video",
            video.name,
            video.width,
            video.height,
            profile=video.profile or "",
            pix_fmt=video.format.name if video.format is not None else "",
            parameter_sets=parameter_sets(video.extradata, video.name),
        )
    audio = stream.codec_context
    return StreamParams("audio", audio.name, sample_rate=audio.sample_rate, channels=audio.channels)


@dataclass(frozen=True)
class OpenSegment:
    """A segment as opened: its streams, for the consumer to create outputs and check params."""

    segment: Segment
    video: av.VideoStream | None  # None: an audio-only recording
    audio: av.AudioStream | None
    video_params: StreamParams | None
    audio_params: StreamParams | None


@dataclass
class TimedPacket:
    packet: av.Packet
    kind: str  # "video" or "audio"
    pts: int  # output clock ticks, continuous across segments
    dts: int
    duration: int  # ticks, 0 when unknown
    at_ms: float  # presentation position on the recording's timeline
    keyframe: bool
    # Shown where the next segment has taken over (Segment.until_ms: an overlap): not to be shown
    # here. A copy leaves it out; a re-encode still decodes it (later frames may refer to it).
    superseded: bool = False


@dataclass(frozen=True)
class Gap:
    at_ms: float
    duration_ms: float
    reason: str


def why_not(gaps: list[Gap]) -> str:
    """The reasons segments were skipped, for a NoMedia answer: a client is told why."""
    reasons = sorted({gap.reason for gap in gaps})
    return f" ({'; '.join(reasons)[:400]})" if reasons else ""


def _ticks(value: int, time_base: Fraction | None) -> int:
    if time_base is None or (time_base.numerator == 1 and time_base.denominator == CLOCK):
        return value  # MPEG-TS always: skip Fraction arithmetic on the per-packet path
    return round(value * time_base * CLOCK)


class PacketTimeline:
    """Iterate `packets(inputs)`; gaps met on the way are collected in `gaps`."""

    def __init__(self, on_open: Callable[[OpenSegment], None], copied: bool = True) -> None:
        self.on_open = on_open
        # Packets are written as they are (a stream copy): decode timestamps must keep rising
        # across segments. A re-encode decodes them afresh, so only the pictures' order counts.
        self.copied = copied
        self.gaps: list[Gap] = []
        self.video_end = 0  # ticks: decode end of the last video frame placed so far
        self.shown_end = 0  # ticks: presentation end of the last video frame kept so far
        self._handed_over = False  # the segment placed last left its tail to the next one
        self.opened = 0
        self._audio_only = False  # set by the first segment; the clock then follows the audio
        self._prev: tuple[Segment, int, int, float] | None = None  # segment, anchor, out_start, at_ms

    def packets(self, inputs: Iterable[SegmentInput]) -> Iterator[TimedPacket]:
        for item in inputs:
            if item.path is None:
                self._gap(item.segment, item.reason or "missing")
                continue
            yield from self._segment_packets(item)

    @property
    def audio_only(self) -> bool:
        return self._audio_only

    def _open(self, item: SegmentInput) -> av.container.InputContainer | None:
        """Open with a light probe once the tracks are known; fully where that finds no picture size."""
        if item.container is not None:
            if _usable(item.container):
                self.opened += 1
                return item.container
            item.container.close()
        probes = [LIGHT_PROBE, FULL_PROBE] if self.opened else [FULL_PROBE]
        for options in probes:
            try:
                container = av.open(str(item.path), options=dict(options))
            except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
                self._gap(item.segment, f"unreadable: {exc}")
                return None
            if options is FULL_PROBE or _usable(container):
                self.opened += 1
                return container
            container.close()
        return None

    def _gap(self, segment: Segment, reason: str) -> None:
        log.warning("segment skipped", extra={"segment": segment.key, "reason": reason})
        self.gaps.append(Gap(segment.start_ms, segment.duration_ms, reason))
        self._prev = None  # what follows a hole is butt-joined, never continued across it

    def _segment_packets(self, item: SegmentInput) -> Iterator[TimedPacket]:
        container = self._open(item)
        if container is None:
            return
        with container:
            videos = [s for s in container.streams.video if s.codec_context.width]
            audio = container.streams.audio[0] if container.streams.audio else None
            if not videos and (container.streams.video or audio is None):
                self._gap(item.segment, "no decodable video stream")
                return
            video = videos[0] if videos else None  # None: audio only, anchored on its audio
            self._audio_only = video is None
            self.on_open(
                OpenSegment(
                    item.segment,
                    video,
                    audio,
                    stream_params(video) if video is not None else None,
                    stream_params(audio) if audio is not None else None,
                )
            )
            wanted = [s for s in (video, audio) if s is not None]
            try:
                anchor_kind = "video" if video is not None else "audio"
                yield from self._place_packets(item.segment, container.demux(*wanted), anchor_kind)
            except av.FFmpegError as exc:
                self._gap(item.segment, f"corrupt: {exc}")

    def _place_packets(
        self, segment: Segment, packets: Iterator[av.Packet], anchor_kind: str = "video"
    ) -> Iterator[TimedPacket]:
        """Anchor the segment on its first video packet (audio read before it waits for it), or
        on its first audio packet in an audio-only recording."""
        anchor: int | None = None
        early: list[tuple[av.Packet, int, int]] = []
        out_start, at_start = 0, 0.0
        for packet in packets:
            if packet.dts is None or packet.size == 0:
                continue
            tb = packet.time_base
            dts = _ticks(packet.dts, tb)
            pts = _ticks(packet.pts, tb) if packet.pts is not None else dts
            if anchor is None:
                if packet.stream.type != anchor_kind:
                    if len(early) < MAX_EARLY_AUDIO:
                        early.append((packet, pts, dts))
                    continue
                anchor = dts
                out_start, at_start = self._place(segment, anchor, (pts - dts) / (CLOCK / 1000))
                for held, held_pts, held_dts in early:
                    yield self._timed(held, held_pts, held_dts, anchor, out_start, at_start, segment)
                early.clear()
            yield self._timed(packet, pts, dts, anchor, out_start, at_start, segment)
        if anchor is None:
            self._gap(segment, f"no {anchor_kind} packets")

    def _timed(
        self,
        packet: av.Packet,
        pts: int,
        dts: int,
        anchor: int,
        out_start: int,
        at_start: float,
        segment: Segment,
    ) -> TimedPacket:
        duration = _ticks(packet.duration or 0, packet.time_base)
        kind = packet.stream.type
        out_dts = out_start + dts - anchor
        at_ms = at_start + (pts - anchor) / (CLOCK / 1000)
        superseded = segment.until_ms is not None and at_ms >= segment.until_ms - SUPERSEDED_EPSILON_MS
        if (kind == "video" or self.audio_only) and not superseded:
            # What the next segment took over does not hold the clock: it follows the last
            # picture kept, so the handover leaves no hole in the clip.
            self.video_end = max(self.video_end, out_dts + (duration or DEFAULT_FRAME_TICKS))
            self.shown_end = max(self.shown_end, out_start + pts - anchor + (duration or DEFAULT_FRAME_TICKS))
        self._handed_over = self._handed_over or superseded
        return TimedPacket(
            packet=packet,
            kind=kind,
            pts=out_start + pts - anchor,
            dts=out_dts,
            duration=duration,
            at_ms=at_ms,
            keyframe=bool(packet.is_keyframe),
            superseded=superseded,
        )

    def _place(self, segment: Segment, anchor: int, delay_ms: float) -> tuple[int, float]:
        """Where a segment's first packet (by DTS) goes on the output clock and on the timeline.

        A segment that follows on from the previous one is placed by the DTS distance from it, on
        both clocks: every packet is then where the encoder put it relative to the packets
        before, whatever each segment's reorder delay (x265's adaptive B-frames vary it per GOP).
        Any other segment starts afresh: the playlist's time is that of its first picture shown,
        which is `delay_ms` after its first decoded one."""
        prev = self._prev
        handed_over, self._handed_over = self._handed_over, False
        if prev is not None and not segment.discontinuity:
            prev_segment, prev_anchor, prev_out, prev_at = prev
            adjacent = abs(segment.start_ms - prev_segment.end_ms) * (CLOCK / 1000) <= CONTINUITY_TOLERANCE
            delta = (anchor - prev_anchor) % WRAP
            expected = (segment.start_ms - prev_segment.start_ms) * (CLOCK / 1000)
            if adjacent and abs(delta - expected) <= CONTINUITY_TOLERANCE:
                placed = (prev_out + delta, prev_at + delta / (CLOCK / 1000))
                self._prev = (segment, anchor, placed[0], placed[1])
                return placed
        out_start = self.video_end
        if handed_over:
            # After a handover the previous segment's last picture kept is not its last decoded:
            # the next one's first picture shown follows it on screen (in a copy, as far as
            # decode order permits).
            follows = self.shown_end - round(delay_ms * (CLOCK / 1000))
            out_start = max(out_start, follows) if self.copied else follows
        at_start = segment.start_ms - delay_ms
        self._prev = (segment, anchor, out_start, at_start)
        return out_start, at_start
