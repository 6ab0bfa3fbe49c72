"""Writing the clip: one MP4, moov atom first, H.265 tagged hvc1 for Apple players."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from workers.timeline import CLOCK

TICK = Fraction(1, CLOCK)
# faststart: the moov atom goes before the media, so players start while downloading.
MP4_OPTIONS = {"movflags": "+faststart"}


class Mp4Writer:
    """Stream-copies packets into an MP4 whose tracks are made from the first segment's streams."""

    def __init__(self, path: Path, faststart: bool = True) -> None:
        """Without faststart the moov is written last; StreamingMp4Upload moves it to the front."""
        self.path = path
        self.container = av.open(str(path), "w", format="mp4", options=dict(MP4_OPTIONS) if faststart else {})
        self.video: av.stream.Stream | None = None
        self.audio: av.stream.Stream | None = None
        self.packets = 0
        self.video_frames = 0
        self.dropped = 0
        self._last_dts: dict[str, int] = {}

    @property
    def started(self) -> bool:
        return self.video is not None

    def add_copy_streams(self, video: av.VideoStream, audio: av.AudioStream | None) -> None:
        self.video = self.container.add_stream_from_template(video)
        if video.codec_context.name == "hevc":
            self.video.codec_tag = "hvc1"  # Safari refuses hev1; hvc1 keeps parameter sets in the header
        if audio is not None:
            self.audio = self.container.add_stream_from_template(audio)

    def write(self, packet: av.Packet, kind: str, pts: int, dts: int) -> None:
        """Mux one packet; one that would go back in time (audio overlapping a join) is dropped."""
        stream = self.video if kind == "video" else self.audio
        if stream is None:
            return
        if dts <= self._last_dts.get(kind, -(1 << 62)):
            self.dropped += 1
            return
        self._last_dts[kind] = dts
        packet.stream = stream
        packet.time_base = TICK
        packet.pts, packet.dts = pts, dts
        self.container.mux(packet)
        self.packets += 1
        if kind == "video":
            self.video_frames += 1

    def close(self) -> None:
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
