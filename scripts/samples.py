"""Synthetic HLS recordings whose frames carry their own index in their pixels.

Tests, the demo and the benchmark all need recordings made fresh at run time; a frame that
says which source frame it is lets a test assert exactly which frames an export holds, and an
audio click on every whole second lets it measure A/V sync in the result.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np

INDEX_BITS = 16
PTS_WRAP = 1 << 33
TS_CLOCK = 90_000
AUDIO_RATE = 48_000
CLICK_SECONDS = 0.02  # a 20 ms tone burst is long enough to survive AAC, short enough to time


@dataclass(frozen=True)
class SampleSpec:
    """What to generate; defaults are a small, fast H.264+AAC recording."""

    seconds: float = 6.0
    fps: int = 25
    width: int = 160
    height: int = 96
    video_codec: str = "h264"  # "h264" or "hevc"
    audio_codec: str | None = "aac"  # None for video only; "pcm_mulaw", "mp2" for camera audio
    segment_seconds: float = 2.0
    gop_frames: int = 25
    b_frames: int = 0
    bit_rate: int | None = None  # None: a constant quality that suits tiny frames
    noise: bool = False  # random texture, so a bitrate target is actually reached
    pts_start: int = 10 * TS_CLOCK  # first PTS in 90 kHz ticks; near 2**33 to test wrap-around
    program_date_time_ms: int | None = 1_700_000_000_000
    discontinuity_at: frozenset[int] = field(default_factory=frozenset)  # segment indices
    first_frame_index: int = 0
    segment_prefix: str = "seg"


@dataclass(frozen=True)
class SampleSegment:
    name: str
    duration_s: float
    first_frame: int
    frames: int
    discontinuity: bool


@dataclass(frozen=True)
class SampleRecording:
    directory: Path
    playlist: Path
    segments: list[SampleSegment]
    spec: SampleSpec


def index_plane(index: int, width: int, height: int, rng: np.random.Generator | None) -> np.ndarray:
    """The luma plane for frame `index`: INDEX_BITS black/white bars across the top half."""
    luma = np.full((height, width), 16, dtype=np.uint8)
    bar = width // INDEX_BITS
    top = height // 2
    for bit in range(INDEX_BITS):
        if index >> (INDEX_BITS - 1 - bit) & 1:
            luma[:top, bit * bar : (bit + 1) * bar] = 235
    if rng is not None:
        luma[top:, :] = rng.integers(16, 236, size=(height - top, width), dtype=np.uint8)
    else:
        luma[top:, :] = 16 + (index * 7) % 200
    return luma


def read_frame_index(frame: av.VideoFrame) -> int:
    """Read back the index written by `index_plane` from a decoded frame (any size, any codec)."""
    luma = frame.to_ndarray(format="gray")
    height, width = luma.shape
    bar = width // INDEX_BITS
    top = height // 2
    value = 0
    for bit in range(INDEX_BITS):
        cell = luma[top // 4 : top * 3 // 4, bit * bar + bar // 4 : (bit + 1) * bar - bar // 4]
        value = value << 1 | int(cell.mean() > 125)
    return value


def _video_encoder_options(spec: SampleSpec) -> dict[str, str]:
    keyint = str(spec.gop_frames)
    if spec.video_codec == "hevc":
        params = f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes={spec.b_frames}:log-level=error"
        return {"x265-params": params, "preset": "ultrafast"}
    return {
        "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes={spec.b_frames}",
        "preset": "veryfast" if spec.b_frames else "ultrafast",
    }


def _encode_intermediate(spec: SampleSpec, path: Path) -> None:
    """Encode the whole recording into one MPEG-TS; it is cut into segments afterwards."""
    rng = np.random.default_rng(1) if spec.noise else None
    frames = round(spec.seconds * spec.fps)
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream(
            "libx265" if spec.video_codec == "hevc" else "libx264",
            rate=spec.fps,
            options=_video_encoder_options(spec),
        )
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        if spec.bit_rate:
            video.bit_rate = spec.bit_rate
        audio = None
        if spec.audio_codec:
            rate = 8_000 if spec.audio_codec == "pcm_mulaw" else AUDIO_RATE
            audio = cast(av.AudioStream, out.add_stream(spec.audio_codec, rate=rate, layout="mono"))
        chroma = np.full((spec.height // 2, spec.width), 128, dtype=np.uint8)
        clicks = _ClickTrack(out, audio, spec.seconds) if audio is not None else None
        for i in range(frames):
            luma = index_plane(spec.first_frame_index + i, spec.width, spec.height, rng)
            frame = av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, spec.fps)
            out.mux(video.encode(frame))
            if clicks is not None:
                clicks.encode_until((i + 1) / spec.fps)  # interleaved, as a camera's muxer does
        out.mux(video.encode(None))
        if clicks is not None:
            clicks.encode_until(spec.seconds)
            out.mux(clicks.audio.encode(None))


class _ClickTrack:
    """Silence with a short 1 kHz burst at every whole second, encoded on demand."""

    def __init__(self, out: av.container.OutputContainer, audio: av.AudioStream, seconds: float) -> None:
        self.out, self.audio = out, audio
        self.rate = audio.codec_context.sample_rate
        self.total = int(seconds * self.rate)
        self.chunk = audio.codec_context.frame_size or 1024
        self.format = audio.codec_context.format.name
        self.position = 0

    def encode_until(self, seconds: float) -> None:
        until = min(int(seconds * self.rate), self.total)
        while self.position < until:
            t = np.arange(self.position, min(self.position + self.chunk, self.total)) / self.rate
            block = np.where((t % 1.0) < CLICK_SECONDS, 0.8 * np.sin(2 * math.pi * 1000 * t), 0.0)
            samples: np.ndarray = (
                (block * 32767).astype(np.int16)
                if self.format.startswith("s16")
                else block.astype(np.float32)
            ).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format=self.format, layout="mono")
            frame.sample_rate, frame.pts = self.rate, self.position
            frame.time_base = Fraction(1, self.rate)
            self.out.mux(self.audio.encode(frame))
            self.position += len(block)


def _split_segments(spec: SampleSpec, source: Path, directory: Path) -> list[SampleSegment]:
    """Cut the intermediate TS at keyframes into segment files, re-stamping PTS as asked."""
    segments: list[SampleSegment] = []
    with av.open(str(source)) as src:
        in_video = src.streams.video[0]
        streams = [in_video, *src.streams.audio[:1]]
        offset = 0
        writer: av.container.OutputContainer | None = None
        out_streams: dict[int, av.stream.Stream] = {}
        first_pts: int | None = None
        seg_first_frame = 0
        frame_no = 0
        pending: list[tuple[int, av.Packet]] = []

        def close_segment(end_frame: int) -> None:
            nonlocal writer
            if writer is None:
                return
            writer.close()
            index = len(segments)
            frames = end_frame - seg_first_frame
            segments.append(
                SampleSegment(
                    name=f"{spec.segment_prefix}_{index:05d}.ts",
                    duration_s=frames / spec.fps,
                    first_frame=spec.first_frame_index + seg_first_frame,
                    frames=frames,
                    discontinuity=index in spec.discontinuity_at,
                )
            )
            writer = None

        for packet in src.demux(*streams):
            if packet.dts is None:
                continue
            if first_pts is None:
                first_pts = packet.pts if packet.pts is not None else packet.dts
            assert first_pts is not None
            if packet.stream is in_video:
                next_boundary = (len(segments) + 1) * spec.segment_seconds
                if packet.is_keyframe and (writer is None or frame_no / spec.fps >= next_boundary - 1e-9):
                    close_segment(frame_no)
                    index = len(segments)
                    if index in spec.discontinuity_at:
                        offset += 7 * TS_CLOCK  # a jump a real encoder restart would cause
                    name = f"{spec.segment_prefix}_{index:05d}.ts"
                    writer = av.open(str(directory / name), "w", format="mpegts")
                    out_streams = {s.index: writer.add_stream_from_template(s) for s in streams}
                    seg_first_frame = frame_no
                    for stream_index, held in pending:
                        _mux_restamped(writer, out_streams[stream_index], held, spec, offset, first_pts)
                    pending.clear()
                frame_no += 1
            if writer is None:
                pending.append((packet.stream.index, packet))
                continue
            _mux_restamped(writer, out_streams[packet.stream.index], packet, spec, offset, first_pts)
        close_segment(frame_no)
    return segments


def _mux_restamped(
    writer: av.container.OutputContainer,
    stream: av.stream.Stream,
    packet: av.Packet,
    spec: SampleSpec,
    offset: int,
    first_pts: int,
) -> None:
    """Shift timestamps; values past 2**33 are written masked to 33 bits, as the TS format wraps."""
    shift = spec.pts_start + offset - first_pts
    if packet.pts is not None:
        packet.pts += shift
    if packet.dts is not None:
        packet.dts += shift
    packet.stream = stream
    writer.mux(packet)


def playlist_text(
    segments: list[SampleSegment],
    program_date_time_ms: int | None,
    pdt_jumps_ms: dict[int, int] | None = None,
) -> str:
    """An HLS media playlist; `pdt_jumps_ms` adds a recording gap before the given segments."""
    jumps = pdt_jumps_ms or {}
    target = max(math.ceil(s.duration_s) for s in segments) if segments else 1
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}", "#EXT-X-MEDIA-SEQUENCE:0"]
    position = program_date_time_ms
    for index, segment in enumerate(segments):
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if position is not None:
            position += jumps.get(index, 0)
            if index == 0 or segment.discontinuity or index in jumps:
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso_ms(position)}")
        lines.append(f"#EXTINF:{segment.duration_s:.3f},")
        lines.append(segment.name)
        if position is not None:
            position += round(segment.duration_s * 1000)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _iso_ms(epoch_ms: int) -> str:
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def generate_recording(
    directory: str | os.PathLike[str],
    spec: SampleSpec | None = None,
    playlist_name: str = "index.m3u8",
    pdt_jumps_ms: dict[int, int] | None = None,
) -> SampleRecording:
    """Write segments and a playlist into `directory`; returns what was written."""
    spec = spec or SampleSpec()
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    intermediate = out_dir / f".{spec.segment_prefix}-whole.ts"
    try:
        _encode_intermediate(spec, intermediate)
        segments = _split_segments(spec, intermediate, out_dir)
    finally:
        intermediate.unlink(missing_ok=True)
    playlist = out_dir / playlist_name
    playlist.write_text(playlist_text(segments, spec.program_date_time_ms, pdt_jumps_ms))
    return SampleRecording(directory=out_dir, playlist=playlist, segments=segments, spec=spec)


def click_onsets(path: str | os.PathLike[str]) -> list[float]:
    """Presentation times (s) where the sample's 1 kHz clicks start in a file's first audio track."""
    onsets: list[float] = []
    loud_until = -1.0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            samples = frame.to_ndarray().astype(np.float64)
            if samples.ndim > 1:
                samples = (
                    samples.mean(axis=0) if samples.shape[0] < samples.shape[1] else samples.mean(axis=1)
                )
            if frame.format.name.startswith("s16"):
                samples /= 32768.0
            start = float(frame.pts * (frame.time_base or 0))
            for i in np.flatnonzero(np.abs(samples) > 0.3):
                t = start + i / frame.sample_rate
                if t > loud_until:
                    onsets.append(t)
                loud_until = t + 0.1
    return onsets


def picture_times(path: str | os.PathLike[str]) -> dict[int, float]:
    """Frame index -> presentation time (s), for every picture in a file's first video track."""
    times: dict[int, float] = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.pts is not None:
                times[read_frame_index(frame)] = float(frame.pts * (frame.time_base or 0))
    return times
