"""The clip's audio track: AAC is copied; anything else a camera records (G.711 mu-law/A-law,
MP2, PCM) is transcoded to AAC, since MP4 players do not accept it."""

from __future__ import annotations

from fractions import Fraction
from typing import cast

import av

from workers.media.timeline import CLOCK

TICK = Fraction(1, CLOCK)
AAC_RATES = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000}
AAC_BIT_RATE = 64_000  # per channel is ample for camera microphones
JOIN_SLACK_TICKS = CLOCK // 1000  # 1 ms of rounding is not an overlap


class AudioTrack:
    """Write audio packets (timestamps in clip ticks); never goes back in time."""

    def __init__(self, container: av.container.OutputContainer, source: av.AudioStream) -> None:
        self.container = container
        self.copy = source.codec_context.name == "aac"
        self.codec = "aac"
        self._last = -(1 << 62)
        if self.copy:
            self.stream = container.add_stream_from_template(source)
            self._decoder: av.AudioCodecContext | None = None
            return
        src = source.codec_context
        rate = src.sample_rate if src.sample_rate in AAC_RATES else 48_000
        layout = "mono" if src.channels <= 1 else "stereo"
        self.stream = container.add_stream("aac", rate=rate, layout=layout)
        self.stream.bit_rate = AAC_BIT_RATE * (1 if layout == "mono" else 2)
        decoder = cast(av.AudioCodecContext, av.CodecContext.create(src.name, "r"))
        decoder.sample_rate, decoder.layout = src.sample_rate, src.layout
        if src.extradata:
            decoder.extradata = src.extradata
        self._decoder = decoder
        self.rate = rate
        self.transcoded_from = src.name

    def write(self, packet: av.Packet, pts: int, dts: int) -> None:
        if self.copy:
            if dts <= self._last:
                return  # overlapping audio at a join: the earlier segment's copy wins
            self._last = dts
            packet.stream = self.stream
            packet.time_base = TICK
            packet.pts, packet.dts = pts, dts
            self.container.mux(packet)
            return
        assert self._decoder is not None
        packet.time_base = TICK
        packet.pts, packet.dts = pts, dts
        for frame in self._decoder.decode(packet):
            self._encode(frame, pts)
            pts += round(frame.samples * CLOCK / frame.sample_rate)

    def _encode(self, frame: av.AudioFrame, pts_ticks: int) -> None:
        if pts_ticks + JOIN_SLACK_TICKS < self._last:
            return  # overlaps what is already written (audio running past a join)
        self._last = pts_ticks + round(frame.samples * CLOCK / frame.sample_rate)
        frame.pts = round(pts_ticks * frame.sample_rate / CLOCK)  # the encoder resamples to its rate
        frame.time_base = Fraction(1, frame.sample_rate)
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        if not self.copy:
            self.container.mux(self.stream.encode(None))
