"""Writing the clip: one MP4, H.265 tagged hvc1 for Apple players, audio as AAC.

Video is either stream-copied packets or frames encoded here; audio goes through AudioTrack.
Without faststart the moov is written last, and StreamingMp4Upload moves it to the front.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av

from workers.media.audio import AudioTrack
from workers.media.timeline import CLOCK

TICK = Fraction(1, CLOCK)
MP4_OPTIONS = {"movflags": "+faststart"}  # moov before the media: players start while downloading


@dataclass(frozen=True)
class EncoderChoice:
    """An encoder and its options, decided by workers.media.encoder_choice from settings and the node."""

    name: str  # libx264, libx265, h264_nvenc, hevc_nvenc
    codec: str  # h264 or hevc
    width: int
    height: int
    rate: Fraction
    options: dict[str, str]
    bit_rate: int = 0


class Mp4Writer:
    def __init__(self, path: Path, faststart: bool = True) -> None:
        self.path = path
        options = dict(MP4_OPTIONS) if faststart else {}
        self.container = av.open(str(path), "w", format="mp4", options=options)
        self.video: av.VideoStream | None = None
        self.audio: AudioTrack | None = None
        self.encoding = False
        self.video_frames = 0
        self.last_video_dts = -(1 << 62)

    @property
    def started(self) -> bool:
        return self.video is not None

    def add_copy_streams(self, video: av.VideoStream | None, audio: av.AudioStream | None) -> None:
        """The source's tracks, copied; without video the clip is an audio-only MP4."""
        if video is not None:
            self.video = self.container.add_stream_from_template(video)
            if video.codec_context.name == "hevc":
                self.video.codec_tag = "hvc1"  # Safari refuses hev1; hvc1 keeps parameter sets in the header
        self.add_audio(audio)

    def add_encoded_video(self, choice: EncoderChoice) -> None:
        stream = cast(
            av.VideoStream,
            self.container.add_stream(choice.name, rate=choice.rate, options=dict(choice.options)),
        )
        stream.width, stream.height, stream.pix_fmt = choice.width, choice.height, "yuv420p"
        stream.time_base = TICK
        stream.codec_context.time_base = TICK
        if choice.bit_rate:
            stream.bit_rate = choice.bit_rate
        if choice.codec == "hevc":
            stream.codec_tag = "hvc1"
        self.video = stream
        self.encoding = True

    def add_audio(self, audio: av.AudioStream | None) -> None:
        if audio is not None:
            self.audio = AudioTrack(self.container, audio)

    def write(self, packet: av.Packet, kind: str, pts: int, dts: int) -> None:
        """Mux one packet with clip timestamps (ticks)."""
        packet.time_base = TICK
        packet.pts, packet.dts = pts, dts
        if kind == "video":
            self.mux_video(packet)
        elif self.audio is not None:
            self.audio.write(packet, pts, dts)

    def mux_video(self, packet: av.Packet) -> None:
        """Copied or encoded: a packet that would go back in time is dropped."""
        if self.video is None or packet.dts is None:
            return
        if packet.dts <= self.last_video_dts:
            return
        self.last_video_dts = packet.dts
        packet.stream = self.video
        self.container.mux(packet)
        self.video_frames += 1

    def close(self) -> None:
        try:
            if self.audio is not None:
                self.audio.close()
        finally:
            self.container.close()


def faststart_copy(source: Path, target: Path) -> None:
    """Rewrite an MP4 with its moov first (a local second pass; only for clips the streaming
    upload cannot re-lay out)."""
    with (
        av.open(str(source)) as src,
        av.open(str(target), "w", format="mp4", options=dict(MP4_OPTIONS)) as dst,
    ):
        streams = {
            s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in {"video", "audio"}
        }
        for stream in streams.values():
            if stream.codec_context.name == "hevc":
                stream.codec_tag = "hvc1"
        for packet in src.demux(*[s for s in src.streams if s.index in streams]):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
