"""NVENC exports, where the node has a card with NVENC. Run with `make test-all` or `-m gpu`.

The same settings without NVENC must produce a file that carries a software banner, so the
banner check below is known to be able to fail (test_software_encodes_carry_a_banner)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.samples import SampleSpec, generate_recording
from tasks.exports.spec import ExportType
from tasks.platform.settings import Settings
from tests.media import ffmpeg_decode_errors, ffprobe, frame_indices
from workers.archive.playlists import covering, parse_playlist
from workers.media.encoder_choice import choose_encoder
from workers.media.encoder_probe import has_nvenc
from workers.media.timeline import SegmentInput
from workers.media.transcode import transcode

# x264 and x265 sign every stream they write with an SEI banner; NVENC writes none. A file
# without the banner was encoded by something else: with use_nvenc on a GPU worker, by NVENC.
SOFTWARE_BANNERS = (b"x264 - core", b"x265 (build")


@pytest.mark.gpu
@pytest.mark.parametrize(("export_type", "codec"), [(ExportType.H264, "h264"), (ExportType.H265, "hevc")])
def test_nvenc_export_is_frame_exact(tmp_path: Path, export_type: ExportType, codec: str) -> None:
    if not has_nvenc():
        pytest.skip("no working NVENC on this node (data-centre GPUs such as H100 have none)")
    gpu_settings = Settings(use_nvenc=True, smart_cut=False)
    assert choose_encoder(export_type, 640, 360, 25, gpu_settings, gpu=True).name.endswith("nvenc")  # type: ignore[arg-type]
    rec = generate_recording(tmp_path / "rec", SampleSpec(seconds=6, width=640, height=360))
    segments = parse_playlist(rec.playlist.read_text(), "r/index.m3u8", "r")
    start, end = segments[0].start_ms + 1500, segments[0].start_ms + 4500
    inputs = [SegmentInput(s, rec.directory / Path(s.key).name) for s in covering(segments, start, end)]
    out = tmp_path / "clip.mp4"
    transcode(inputs, start, end, out, export_type, gpu_settings, allow_smart_cut=False)
    assert frame_indices(out) == list(range(37, 112))
    written = out.read_bytes()
    assert not [b for b in SOFTWARE_BANNERS if b in written], "a software encoder wrote this file"
    assert next(s for s in ffprobe(out)["streams"] if s["codec_type"] == "video")["codec_name"] == codec
    assert ffmpeg_decode_errors(out) == ""


@pytest.mark.parametrize("export_type", [ExportType.H264, ExportType.H265])
def test_software_encodes_carry_a_banner(tmp_path: Path, export_type: ExportType) -> None:
    """Runs everywhere: what the NVENC test looks for is really absent from a CPU encode."""
    rec = generate_recording(tmp_path / "rec", SampleSpec(seconds=2))
    segments = parse_playlist(rec.playlist.read_text(), "r/index.m3u8", "r")
    start, end = segments[0].start_ms, segments[0].start_ms + 1000
    inputs = [SegmentInput(s, rec.directory / Path(s.key).name) for s in covering(segments, start, end)]
    out = tmp_path / "clip.mp4"
    transcode(inputs, start, end, out, export_type, Settings(use_nvenc=True), allow_smart_cut=False)
    assert [b for b in SOFTWARE_BANNERS if b in out.read_bytes()]
