"""Frame-accurate exports: the first picture is the one on screen at the start, the last the
one just before the end, audio trimmed to match.

Video is handled a GOP at a time (keyframe to keyframe). A GOP wholly inside the range is
stream-copied when smart cut is allowed (the source already has the requested codec); any
other GOP is decoded and exactly its frames inside the range are encoded. A full transcode is
the case where no GOP is copied. Splices keep the stream decodable because each encoded run
starts at an IDR with its own in-band parameter sets and each copied GOP starts at the
source's IDR with the source's; where the source does not repeat its parameter sets, or its
B-frame reordering would reach back across a splice, that GOP is re-encoded instead. Smart cut
is H.264 only: `hvc1` (which Apple players require) allows parameter sets only in the sample
entry, so two encoders' parameter sets cannot share an H.265 track; H.265 output is always a
full re-encode. The export verifies a spliced file decodes frame for frame and re-encodes
fully if not (workers.jobs.export_pipeline).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import cast

import av

from tasks.exports.spec import ExportType
from tasks.platform.settings import Settings
from workers.errors import NoMedia
from workers.media.coverage import Coverage
from workers.media.encoder_choice import CODEC_FOR_TYPE, choose_encoder, gpu_wanted
from workers.media.encoder_run import EncoderRun
from workers.media.mp4_writer import TICK, EncoderChoice, Mp4Writer
from workers.media.remux import ClipStats
from workers.media.timeline import (
    CLOCK,
    OpenSegment,
    PacketTimeline,
    SegmentInput,
    StreamParams,
    TimedPacket,
    why_not,
)

ProgressFn = Callable[[float], None]
EPSILON_MS = 0.01  # timeline positions are exact to the 90 kHz tick; this absorbs float noise
# Audio read before the first picture's timestamp is known waits for it: at most the rest of
# one GOP (from the range start to the next keyframe). 4096 AAC frames are ~87 s at 48 kHz.
AUDIO_LOOKBEHIND = 4096
AUDIO_PREROLL_MS = 2000  # more than any frame's duration: the picture on screen at the start began later


def nal_types(data: bytes, codec: str) -> set[int]:
    """NAL unit types in an Annex B access unit."""
    found: set[int] = set()
    index = data.find(b"\x00\x00\x01")
    while index != -1 and index + 3 < len(data):
        header = data[index + 3]
        found.add(header & 0x1F if codec == "h264" else (header >> 1) & 0x3F)
        index = data.find(b"\x00\x00\x01", index + 3)
    return found


def _length_prefixed(video: av.VideoStream) -> bool:
    """fMP4/CMAF input (avcC/hvcC extradata, length-prefixed NAL units): the encoder's Annex B
    runs cannot share its track, so smart cut is off and the whole range is encoded."""
    extradata = video.codec_context.extradata
    return extradata is not None and extradata[:1] == b"\x01"


def carries_parameter_sets(packet: av.Packet, codec: str) -> bool:
    needed = {7, 8} if codec == "h264" else {32, 33, 34}
    return needed <= nal_types(bytes(packet), codec)


@dataclass
class _Gop:
    packets: list[TimedPacket] = field(default_factory=list)

    @property
    def start_ms(self) -> float:
        return min(p.at_ms for p in self.packets)

    def end_ms(self, frame_ms: float) -> float:
        return max(p.at_ms for p in self.packets) + frame_ms


class Transcoder:
    def __init__(
        self,
        start_ms: float,
        end_ms: float,
        out: Path,
        export_type: ExportType,
        settings: Settings,
        faststart: bool,
        allow_smart_cut: bool,
    ) -> None:
        self.start_ms, self.end_ms = start_ms, end_ms
        self.out, self.export_type, self.settings, self.faststart = out, export_type, settings, faststart
        self.target = CODEC_FOR_TYPE[export_type]
        self.allow_smart_cut = allow_smart_cut
        self.writer: Mp4Writer | None = None
        self.choice: EncoderChoice | None = None
        self.decoder: av.VideoCodecContext | None = None
        self.decoder_codec = ""
        self.decoder_params: StreamParams | None = None  # a new decoder where the stream changes
        self.decoder_drained = False
        self.leading_only = False  # the range's last GOP is done: only the next one's leading pictures
        self.encoder: EncoderRun | None = None
        self.smart = False
        self.origin: int | None = None
        self.frame_ms = 40.0
        self.covered_ms = 0.0  # audio-only clips; pictures are measured by `coverage`
        self.coverage = Coverage()
        self.copied_gops = 0
        self.encoded_frames = 0
        self.video_done = False
        self.audio_done = False
        self.audio_past_end = False  # audio past the range read before the origin was known
        self.has_audio = False
        self.audio_only = False  # the recording has no video: the clip is its audio alone
        self.gop = _Gop()
        self.audio_wait: deque[TimedPacket] = deque(maxlen=AUDIO_LOOKBEHIND)
        self.at_of_pts: dict[int, float] = {}
        # Pictures a segment shows after the next one took over (an overlap): decoded as references
        # for the pictures before, never encoded; the decoder is drained before the next segment
        # (whose pictures may reuse these output timestamps).
        self.superseded_pts: set[int] = set()
        self.source_codec = ""
        self.audio_codec: str | None = None

    # -- segments --------------------------------------------------------------------------
    def on_open(self, segment: OpenSegment) -> None:
        video = segment.video
        if self.audio_only:
            return  # the clip started audio-only and stays so: later pictures have no track
        if video is None or segment.video_params is None:  # audio only: an audio-only MP4
            if self.writer is None:
                self.writer = Mp4Writer(self.out, faststart=self.faststart)
                self.writer.add_audio(segment.audio)
                self.has_audio, self.audio_only, self.video_done = True, True, True
                self.audio_codec = segment.audio_params.codec if segment.audio_params else None
            return
        if self.writer is None:
            rate = video.average_rate or video.guessed_rate or Fraction(25)
            params = segment.video_params
            self.choice = choose_encoder(
                self.export_type,
                params.width,
                params.height,
                rate,
                self.settings,
                gpu=gpu_wanted(self.settings),
            )
            self.source_codec = params.codec
            self.smart = (
                self.allow_smart_cut
                and self.target == "h264"
                and params.codec == self.target
                and (params.width, params.height) == (self.choice.width, self.choice.height)
                and not self.choice.name.endswith("nvenc")
                and not _length_prefixed(video)
            )
            self.writer = Mp4Writer(self.out, faststart=self.faststart)
            if self.smart:
                self.writer.add_copy_streams(video, segment.audio)
            else:
                self.encoder = EncoderRun(self.choice, self.writer, spliced=False)
                self.writer.add_audio(segment.audio)
            self.has_audio = segment.audio is not None
            self.audio_codec = segment.audio_params.codec if segment.audio_params else None
        if self.decoder_params is None or not segment.video_params.same_as(self.decoder_params):
            if self.gop.packets:
                self._finish_gop(next_keyframe_ms=None)  # with the decoder of its own codec
            self._drain_decoder()
            self.decoder_drained = False
            decoder = cast(av.VideoCodecContext, av.CodecContext.create(segment.video_params.codec, "r"))
            if video.codec_context.extradata:
                decoder.extradata = video.codec_context.extradata
            decoder.thread_type = "AUTO"
            self.decoder, self.decoder_codec = decoder, segment.video_params.codec
            self.decoder_params = segment.video_params
        elif self.smart and segment.video_params.codec != self.source_codec:
            self.smart = False

    # -- packets ---------------------------------------------------------------------------
    def feed(self, item: TimedPacket) -> None:
        if item.kind == "audio":
            if not item.superseded:  # the next segment's audio covers that time
                self._audio(item)
            return
        if self.video_done:
            return
        if item.duration:
            self.frame_ms = item.duration * 1000 / CLOCK
        if item.keyframe and self.gop.packets:
            self._finish_gop(next_keyframe_ms=item.at_ms)
            if self.video_done:
                return
        if not self.gop.packets and not item.keyframe:
            return  # undecodable without its keyframe
        if item.superseded:
            self.superseded_pts.add(item.pts)  # decoded (a reference), never encoded
        self.gop.packets.append(item)
        if self.leading_only and not item.keyframe and item.at_ms >= self.gop.packets[0].at_ms:
            # The first trailing picture of the GOP after the range: its leading pictures (shown
            # before its keyframe, possibly before the end) are all in; nothing later is shown.
            self.gop.packets.pop()
            self._finish_gop(next_keyframe_ms=None)
            self.video_done = True

    def finish(self) -> None:
        if self.gop.packets and not self.video_done:
            self._finish_gop(next_keyframe_ms=None)
        self._drain_decoder()
        if self.encoder is not None:
            self.encoder.flush()

    @property
    def done(self) -> bool:
        return self.video_done and (self.audio_done or not self.has_audio)

    def _finish_gop(self, next_keyframe_ms: float | None) -> None:
        gop, self.gop = self.gop, _Gop()
        gop_start = gop.start_ms
        gop_end = next_keyframe_ms if next_keyframe_ms is not None else gop.end_ms(self.frame_ms)
        if gop_end <= self.start_ms + EPSILON_MS:
            self.superseded_pts.clear()  # the next segment's pictures may reuse those timestamps
            return  # wholly before the range: not even decoded
        if gop_start >= self.end_ms - EPSILON_MS:
            self.video_done = True
            return
        inside = gop_start >= self.start_ms - EPSILON_MS and gop_end <= self.end_ms + EPSILON_MS
        handed_over = any(p.superseded for p in gop.packets)  # only part of it is this clip's
        if handed_over or not (
            self.smart and inside and carries_parameter_sets(gop.packets[0].packet, self.source_codec)
        ):
            self._decode_gop(gop)
            if handed_over:
                self._drain_decoder()
                self.superseded_pts.clear()
        elif not self._copy_gop(gop):
            self._decode_gop(gop)  # its decode order would overlap the encoded frames before it
        if gop_end >= self.end_ms - EPSILON_MS:
            # The next GOP's leading pictures (open GOP) may still be shown before the end.
            self.leading_only = next_keyframe_ms is not None
            self.video_done = self.video_done or not self.leading_only

    def _copy_gop(self, gop: _Gop) -> bool:
        """Copy a GOP after the encoded run before it; False where its DTS would go back in time."""
        self._drain_decoder()  # the decoder's last frames belong before the splice
        if self.encoder is not None:
            self.encoder.flush()  # every encoded frame before the splice is out first
            self.encoder = None
        assert self.writer is not None
        if self.origin is None:
            self._set_origin(min(p.pts for p in gop.packets))
        assert self.origin is not None
        if gop.packets[0].dts - self.origin <= self.writer.last_video_dts:
            return False  # B-frame reordering reaches back into frames already encoded
        for item in gop.packets:
            self.writer.write(item.packet, "video", item.pts - self.origin, item.dts - self.origin)
            self.coverage.add(item.at_ms)
        self.copied_gops += 1
        return True

    def _decode_gop(self, gop: _Gop) -> None:
        """Feed a GOP to the decoder, which keeps running across GOPs (frame threads stay busy)."""
        assert self.decoder is not None
        if self.decoder_drained:
            self.decoder.flush_buffers()  # reopen after a drain; a GOP starts at a keyframe
            self.decoder_drained = False
        for item in gop.packets:
            if item.pts == item.dts and item.at_ms >= self.end_ms - EPSILON_MS:
                break  # no reordering: nothing after this frame is shown inside the range
            self.at_of_pts[item.pts] = item.at_ms
            packet = item.packet
            packet.time_base, packet.pts, packet.dts = TICK, item.pts, item.dts
            for frame in self.decoder.decode(packet):
                self._frame(frame)

    def _drain_decoder(self) -> None:
        if self.decoder is None or self.decoder_drained or not self.at_of_pts:
            return
        for frame in self.decoder.decode(None):
            self._frame(frame)
        self.decoder_drained = True
        self.at_of_pts.clear()

    def _frame(self, frame: av.VideoFrame) -> None:
        at = self.at_of_pts.pop(frame.pts, None) if frame.pts is not None else None
        if at is None or frame.pts in self.superseded_pts:
            return
        if at + self.frame_ms <= self.start_ms + EPSILON_MS or at >= self.end_ms - EPSILON_MS:
            return
        assert frame.pts is not None and self.writer is not None and self.choice is not None
        if self.origin is None:
            self._set_origin(frame.pts)
        if self.encoder is None:
            self.encoder = EncoderRun(self.choice, self.writer, spliced=True)
        assert self.origin is not None
        self.encoder.encode(frame, frame.pts - self.origin)
        self.encoded_frames += 1
        self.coverage.add(at)

    def covered(self) -> float:
        if self.audio_only:
            return self.covered_ms
        return self.coverage.covered_ms(self.start_ms, self.end_ms, self.frame_ms)

    # -- audio -----------------------------------------------------------------------------
    def _set_origin(self, pts: int) -> None:
        self.origin = pts
        waiting, self.audio_wait = list(self.audio_wait), deque(maxlen=AUDIO_LOOKBEHIND)
        for item in waiting:
            self._audio(item)
        self.audio_done = self.audio_done or self.audio_past_end

    def _audio(self, item: TimedPacket) -> None:
        if self.audio_done or self.writer is None:
            return
        if item.at_ms >= self.end_ms - EPSILON_MS:
            if self.origin is None:  # the range's pictures are not decoded yet: keep what waits
                self.audio_past_end = True
            else:
                self.audio_done = True
            return
        if self.audio_only:
            ends_at = item.at_ms + item.duration * 1000 / CLOCK
            if self.origin is None and ends_at <= self.start_ms:
                return
            if self.origin is None:
                self._set_origin(item.pts)
            self.covered_ms += max(0.0, min(ends_at, self.end_ms) - max(item.at_ms, self.start_ms))
        if self.origin is None:
            # Audio that ended well before the range cannot follow the first picture shown in it.
            if item.at_ms + item.duration * 1000 / CLOCK > self.start_ms - AUDIO_PREROLL_MS:
                self.audio_wait.append(item)
            return
        if item.pts < self.origin:
            return
        self.writer.write(item.packet, "audio", item.pts - self.origin, item.dts - self.origin)


def transcode(
    inputs: Iterable[SegmentInput],
    start_ms: float,
    end_ms: float,
    out: Path,
    export_type: ExportType,
    settings: Settings,
    on_progress: ProgressFn | None = None,
    faststart: bool = True,
    allow_smart_cut: bool = True,
) -> ClipStats:
    job = Transcoder(start_ms, end_ms, out, export_type, settings, faststart, allow_smart_cut)
    timeline = PacketTimeline(job.on_open, copied=False)
    span = max(end_ms - start_ms, 1.0)
    try:
        for item in timeline.packets(inputs):
            job.feed(item)
            if on_progress is not None and (item.kind == "video" or job.audio_only):
                on_progress((item.at_ms - start_ms) / span)
            if job.done:
                break
        job.finish()
    finally:
        if job.encoder is not None:
            job.encoder.stop()
        if job.writer is not None:
            job.writer.close()
    covered_ms = job.covered()
    if job.writer is None or (not job.audio_only and job.writer.video_frames == 0) or covered_ms <= 0:
        raise NoMedia(f"no readable media in the requested range{why_not(timeline.gaps)}")
    return ClipStats(
        covered_ms=covered_ms,
        video_frames=job.writer.video_frames,
        video_codec="" if job.audio_only else job.target,
        audio_codec="aac" if job.has_audio else None,
        gaps=timeline.gaps,
        spliced=job.copied_gops > 0 and job.encoded_frames > 0,
    )
