"""Frame-accurate exports (types 1 and 2): exact first/last frames and counts from H.264 and
H.265 sources with starts between keyframes, A/V sync, smart cut, camera audio."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from scripts.samples import SampleRecording, SampleSpec, generate_recording, playlist_text
from tasks.exports.spec import ExportType
from tasks.platform.settings import Settings
from tests.media import ffmpeg_decode_errors, ffprobe, frame_indices, sync_error_s
from workers.archive.playlists import covering, parse_playlist
from workers.media.audio import AudioTrack
from workers.media.remux import ClipStats, remux
from workers.media.timeline import CLOCK, SegmentInput
from workers.media.transcode import transcode
from workers.media.verify import decodes_cleanly

FPS = 25


def run(
    recording: SampleRecording,
    out: Path,
    start_s: float,
    duration_s: float,
    export_type: ExportType,
    playlist: str | None = None,
    **kwargs: Any,
) -> ClipStats:
    segments = parse_playlist(playlist or recording.playlist.read_text(), "r/index.m3u8", "r")
    origin = segments[0].start_ms
    start, end = origin + start_s * 1000, origin + (start_s + duration_s) * 1000
    inputs = [SegmentInput(s, recording.directory / Path(s.key).name) for s in covering(segments, start, end)]
    if export_type is ExportType.COPY:
        return remux(inputs, start, end, out, **kwargs)
    return transcode(inputs, start, end, out, export_type, Settings(encode_preset="ultrafast"), **kwargs)


def _annex_b_units(data: bytes) -> list[bytes]:
    """NAL units of an MPEG-TS packet (start-code framed)."""
    units = []
    for chunk in data.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01"):
        unit = chunk.rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def _length_prefixed_units(data: bytes) -> list[bytes]:
    """NAL units of an MP4 sample (4-byte length framed)."""
    units, offset = [], 0
    while offset + 4 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        units.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return units


def _is_picture(unit: bytes, codec: str) -> bool:
    """A coded slice (VCL NAL unit): what a splice copies byte for byte from the source."""
    if codec == "hevc":
        return (unit[0] >> 1) & 0x3F < 32
    return 1 <= unit[0] & 0x1F <= 5


def _pictures(path: Path, framing: Any) -> set[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        return {
            unit
            for packet in container.demux(stream)
            if packet.size
            for unit in framing(bytes(packet))
            if unit and _is_picture(unit, codec)
        }


def copied_pictures(clip: Path, recording: SampleRecording) -> int:
    """How many of the clip's coded pictures are byte for byte the source's: > 0 only for a
    clip that splices source GOPs in (a smart cut), 0 for a full re-encode. Read from the files
    themselves, not from what the exporter says it did."""
    source: set[bytes] = set()
    for segment in sorted(recording.directory.glob("*.ts")):
        source |= _pictures(segment, _annex_b_units)
    return len(_pictures(clip, _length_prefixed_units) & source)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SampleRecording]:
    root = tmp_path_factory.mktemp("sources")
    return {
        codec: generate_recording(root / codec, SampleSpec(seconds=8, video_codec=codec))
        for codec in ("h264", "hevc")
    }


@pytest.mark.parametrize("source", ["h264", "hevc"])
@pytest.mark.parametrize(
    ("export_type", "codec", "tag"), [(ExportType.H264, "h264", "avc1"), (ExportType.H265, "hevc", "hvc1")]
)
@pytest.mark.parametrize(("start_s", "first", "last"), [(1.5, 37, 162), (2.03, 50, 175), (0.5, 12, 137)])
def test_exact_frames_in_sync(
    sources: dict[str, SampleRecording],
    tmp_path: Path,
    source: str,
    export_type: ExportType,
    codec: str,
    tag: str,
    start_s: float,
    first: int,
    last: int,
) -> None:
    out = tmp_path / "clip.mp4"
    stats = run(sources[source], out, start_s, 5.0, export_type)
    assert frame_indices(out) == list(range(first, last + 1))
    assert stats.video_frames == last - first + 1
    assert stats.covered_ms == pytest.approx(5000)
    video = next(s for s in ffprobe(out)["streams"] if s["codec_type"] == "video")
    assert (video["codec_name"], video["codec_tag_string"]) == (codec, tag)
    assert ffmpeg_decode_errors(out) == ""
    assert sync_error_s(out, FPS) < 0.025


def test_h264_smart_cut_copies_the_middle(sources: dict[str, SampleRecording], tmp_path: Path) -> None:
    out = tmp_path / "smart.mp4"
    stats = run(sources["h264"], out, 1.5, 5.0, ExportType.H264)
    assert stats.spliced
    full = tmp_path / "full.mp4"
    full_stats = run(sources["h264"], full, 1.5, 5.0, ExportType.H264, allow_smart_cut=False)
    assert not full_stats.spliced
    assert frame_indices(full) == frame_indices(out)
    assert decodes_cleanly(out, stats.video_frames)
    assert copied_pictures(out, sources["h264"]) > 0  # the check below can see a splice
    assert copied_pictures(full, sources["h264"]) == 0


def test_hevc_output_is_never_spliced(sources: dict[str, SampleRecording], tmp_path: Path) -> None:
    """Judged by the file: not one of its pictures is a copy of the source's."""
    out = tmp_path / "clip.mp4"
    stats = run(sources["hevc"], out, 1.5, 5.0, ExportType.H265)
    assert copied_pictures(out, sources["hevc"]) == 0
    assert not stats.spliced


def test_verification_catches_a_broken_splice(sources: dict[str, SampleRecording], tmp_path: Path) -> None:
    """A file missing pictures is refused, which is what sends an export to a full re-encode."""
    out = tmp_path / "clip.mp4"
    stats = run(sources["h264"], out, 1.5, 5.0, ExportType.H264)
    assert decodes_cleanly(out, stats.video_frames)
    assert not decodes_cleanly(out, stats.video_frames + 1)


def test_gap_inside_an_encoded_range(sources: dict[str, SampleRecording], tmp_path: Path) -> None:
    rec = sources["h264"]
    text = playlist_text(rec.segments, rec.spec.program_date_time_ms, pdt_jumps_ms={2: 10_000})
    out = tmp_path / "clip.mp4"
    stats = run(rec, out, 3.0, 12.0, ExportType.H265, playlist=text)  # 3-4 s, hole, 14-15 s
    assert frame_indices(out) == list(range(75, 125))
    assert stats.covered_ms == pytest.approx(2000)
    assert ffmpeg_decode_errors(out) == ""


def test_resolution_change_is_scaled_when_encoding(tmp_path: Path) -> None:
    first = generate_recording(tmp_path / "rec", SampleSpec(seconds=4))
    second = generate_recording(
        tmp_path / "rec",
        SampleSpec(seconds=4, width=320, height=192, first_frame_index=100, segment_prefix="big"),
    )
    segments = [*first.segments, *[replace(s, discontinuity=True) for s in second.segments]]
    text = playlist_text(segments, first.spec.program_date_time_ms)
    out = tmp_path / "clip.mp4"
    run(first, out, 3.0, 2.0, ExportType.H264, playlist=text)
    assert frame_indices(out) == [*range(75, 100), *range(100, 125)]
    video = next(s for s in ffprobe(out)["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (160, 96)


@pytest.mark.parametrize("audio_codec", ["mp2", "ac3"])
def test_camera_audio_in_ts_becomes_aac(tmp_path: Path, audio_codec: str) -> None:
    rec = generate_recording(tmp_path / audio_codec, SampleSpec(seconds=6, audio_codec=audio_codec))
    for export_type in (ExportType.COPY, ExportType.H264):
        out = tmp_path / f"clip-{int(export_type)}.mp4"
        run(rec, out, 1.0, 4.0, export_type)
        audio = next(s for s in ffprobe(out)["streams"] if s["codec_type"] == "audio")
        assert audio["codec_name"] == "aac"
        assert float(audio["duration"]) == pytest.approx(4.0, abs=0.1)
        assert sync_error_s(out, FPS) < 0.03


@pytest.mark.parametrize("codec", ["pcm_mulaw", "pcm_alaw", "pcm_s16le"])
def test_audio_track_transcodes_g711_and_pcm(tmp_path: Path, codec: str) -> None:
    """G.711 and PCM cannot ride in MPEG-TS, but any demuxer's stream goes through AudioTrack."""
    source = tmp_path / "in.wav"  # RIFF carries G.711 and PCM, as camera SDKs write them
    rate = 8000
    with av.open(str(source), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        samples = (np.sin(np.arange(rate * 2) * 2 * np.pi * 440 / rate) * 20000).astype(np.int16)
        for start in range(0, len(samples), 800):
            frame = av.AudioFrame.from_ndarray(
                samples[start : start + 800].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    target = tmp_path / "out.mp4"
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4") as dst:
        track = AudioTrack(dst, src.streams.audio[0])
        assert not track.copy
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is None:
                continue
            ticks = round(packet.pts * packet.time_base * CLOCK)
            track.write(packet, ticks, ticks)
        track.close()
    audio = next(s for s in ffprobe(target)["streams"] if s["codec_type"] == "audio")
    assert (audio["codec_name"], int(audio["sample_rate"])) == ("aac", rate)
    assert float(audio["duration"]) == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("export_type", [ExportType.H264, ExportType.H265])
def test_a_range_inside_one_gop_keeps_its_audio(tmp_path: Path, export_type: ExportType) -> None:
    """The audio read before the range's pictures are decoded (they are decoded once the next
    keyframe is read, after audio past the range) waits for them and is not dropped."""
    source = generate_recording(tmp_path / "src", SampleSpec(seconds=4, gop_frames=50))
    out = tmp_path / "clip.mp4"
    run(source, out, 0.5, 1.0, export_type)
    assert frame_indices(out) == list(range(12, 38))
    streams = {s["codec_type"]: s for s in ffprobe(out)["streams"]}
    assert streams["audio"]["codec_name"] == "aac"
    assert float(streams["audio"]["duration"]) == pytest.approx(1.0, abs=0.05)
    assert sync_error_s(out, FPS) < 0.025
