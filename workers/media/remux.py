"""Stream copy: segments in, one MP4 out, packet by packet; nothing holds the whole clip."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workers.errors import NoMedia
from workers.media.copy_cut import CopyCut
from workers.media.mp4_boxes import trim_video_presentation
from workers.media.mp4_writer import Mp4Writer
from workers.media.timeline import (
    CLOCK,
    Gap,
    OpenSegment,
    PacketTimeline,
    SegmentInput,
    StreamParams,
    TimedPacket,
    why_not,
)

ProgressFn = Callable[[float], None]


@dataclass
class ClipStats:
    covered_ms: float
    video_frames: int
    video_codec: str
    audio_codec: str | None
    gaps: list[Gap] = field(default_factory=list)
    spliced: bool = False  # encoded and copied runs share the track (smart cut)


@dataclass
class _Tracks:
    """The first segment's parameters; later segments must match them to be copied."""

    video: StreamParams | None = None
    audio: StreamParams | None = None


class ParametersChanged(Exception):
    """The stream changes in a way one copied MP4 track cannot carry (another codec, size, pixel
    format or parameter sets): the caller re-encodes the clip instead (never a refusal)."""

    def __init__(self, message: str, codec: str) -> None:
        super().__init__(message)
        self.codec = codec  # the first segment's video codec: what the re-encode should produce


def check_same_params(first: _Tracks, segment: OpenSegment) -> None:
    mine, theirs = first.video, segment.video_params
    codec = mine.codec if mine is not None else ""
    if (mine is None) != (theirs is None) or (mine and theirs and not theirs.same_as(mine)):
        describe = [p.describe() if p else "no video" for p in (mine, theirs)]
        raise ParametersChanged(
            f"video parameters change inside the range at {segment.segment.key} "
            f"({describe[0]} -> {describe[1]})",
            codec,
        )
    if first.audio and segment.audio_params and not segment.audio_params.same_as(first.audio):
        raise ParametersChanged(
            f"audio parameters change inside the range at {segment.segment.key} "
            f"({first.audio.describe()} -> {segment.audio_params.describe()})",
            codec,
        )


class Handover:
    """Leaves out what a segment shows after the next one has taken over (an overlap), where a
    copy can: when every picture kept was decoded before the first one left out. A picture kept
    after one left out (B-frames across the handover) may refer to it: a copy cannot carry that
    cut, so the clip is re-encoded (ParametersChanged), which cuts it frame-exactly."""

    def __init__(self, timeline: PacketTimeline) -> None:
        self.timeline = timeline
        self._left_out_in: int | None = None  # the segment (by open count) a picture was left out of

    def leaves_out(self, item: TimedPacket, codec: str) -> bool:
        if item.kind != "video" and not self.timeline.audio_only:
            return item.superseded
        if item.superseded:
            self._left_out_in = self.timeline.opened
            return True
        if self._left_out_in == self.timeline.opened:
            raise ParametersChanged(
                f"pictures reordered across an overlap's handover at {item.at_ms:.0f} ms", codec
            )
        return False


def remux(
    inputs: Iterable[SegmentInput],
    start_ms: float,
    end_ms: float,
    out_path: Path,
    edit_list: bool = False,
    on_progress: ProgressFn | None = None,
    faststart: bool = True,
) -> ClipStats:
    """Copy the packets of [start_ms, end_ms) into `out_path`; raises NoMedia if there are none."""
    tracks = _Tracks()
    writer: Mp4Writer | None = None
    cut = CopyCut(start_ms, end_ms, edit_list=edit_list)

    def on_open(segment: OpenSegment) -> None:
        nonlocal writer
        if writer is None:
            writer = Mp4Writer(out_path, faststart=faststart)
            writer.add_copy_streams(segment.video, segment.audio)
            tracks.video, tracks.audio = segment.video_params, segment.audio_params
            cut.has_audio = segment.audio is not None
            cut.has_video = segment.video is not None
        else:
            check_same_params(tracks, segment)

    timeline = PacketTimeline(on_open)
    handover = Handover(timeline)
    span = max(end_ms - start_ms, 1.0)
    try:
        for item in timeline.packets(inputs):
            assert writer is not None  # on_open made it before the segment's first packet
            if handover.leaves_out(item, tracks.video.codec if tracks.video else ""):
                continue
            for packet in cut.feed(item):
                writer.write(packet.item.packet, packet.item.kind, packet.pts, packet.dts)
            if on_progress is not None and (item.kind == "video" or not cut.has_video):
                on_progress((item.at_ms - start_ms) / span)
            if cut.done:
                break
        for packet in cut.finish():
            assert writer is not None
            writer.write(packet.item.packet, packet.item.kind, packet.pts, packet.dts)
    finally:
        if writer is not None:
            writer.close()
    if writer is not None and cut.past_end:
        trim_video_presentation(out_path, cut.shown_end / CLOCK)  # hide the references past the end
    covered_ms = cut.covered()
    if writer is None or (cut.has_video and writer.video_frames == 0) or covered_ms <= 0:
        raise NoMedia(f"no readable media in the requested range{why_not(timeline.gaps)}")
    return ClipStats(
        covered_ms=covered_ms,
        video_frames=writer.video_frames,
        video_codec=tracks.video.codec if tracks.video else "",
        audio_codec=tracks.audio.codec if tracks.audio else None,
        gaps=[*timeline.gaps, *cut.carrier.gaps],
    )
