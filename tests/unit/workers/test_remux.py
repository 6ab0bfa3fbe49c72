"""Stream copy from generated recordings: exactly which frames come out, in sync, through
gaps, discontinuities, 33-bit wrap-around, H.265 and codec changes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from scripts.samples import PTS_WRAP, TS_CLOCK, SampleRecording, SampleSpec, generate_recording, playlist_text
from tests.media import ffmpeg_decode_errors, ffprobe, frame_indices, moov_before_mdat, sync_error_s
from workers.archive.playlists import Segment, covering, parse_playlist
from workers.errors import NoMedia
from workers.media.remux import ClipStats, ParametersChanged, remux
from workers.media.timeline import SegmentInput

FPS = 25


def timeline(recording: SampleRecording, text: str | None = None) -> list[Segment]:
    return parse_playlist(text or recording.playlist.read_text(), "rec/index.m3u8", "rec")


def inputs(
    recording: SampleRecording, segments: list[Segment], drop: set[int] = frozenset()
) -> list[SegmentInput]:
    items = []
    for index, segment in enumerate(segments):
        path = recording.directory / Path(segment.key).name
        items.append(SegmentInput(segment, None, "missing") if index in drop else SegmentInput(segment, path))
    return items


def cut(
    recording: SampleRecording,
    out: Path,
    start_s: float,
    duration_s: float,
    drop: set[int] = frozenset(),
    edit_list: bool = False,
    playlist: str | None = None,
) -> ClipStats:
    segments = timeline(recording, playlist)
    origin = segments[0].start_ms
    start, end = origin + start_s * 1000, origin + (start_s + duration_s) * 1000
    wanted = [
        item for item in inputs(recording, segments, drop) if item.segment in covering(segments, start, end)
    ]
    return remux(wanted, start, end, out, edit_list=edit_list)


@pytest.fixture
def h264(tmp_path: Path) -> SampleRecording:
    return generate_recording(tmp_path / "h264", SampleSpec(seconds=8))


def test_starts_at_keyframe_before_start_and_ends_at_end(h264: SampleRecording, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    stats = cut(h264, out, start_s=1.5, duration_s=5.0)
    assert frame_indices(out) == list(range(25, 163))  # keyframe at 1.0 s .. last frame before 6.5 s
    assert stats.covered_ms == pytest.approx(5000)
    assert stats.video_frames == 138
    assert moov_before_mdat(out)
    assert ffmpeg_decode_errors(out) == ""
    assert sync_error_s(out, FPS) < 0.025


def test_streams_are_copied_not_reencoded(h264: SampleRecording, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    cut(h264, out, start_s=0, duration_s=4)
    streams = {s["codec_type"]: s for s in ffprobe(out)["streams"]}
    assert streams["video"]["codec_name"] == "h264"
    assert streams["video"]["codec_tag_string"] == "avc1"
    assert streams["audio"]["codec_name"] == "aac"
    assert float(streams["video"]["start_time"]) == 0.0
    assert frame_indices(out) == list(range(0, 100))


def test_edit_list_presents_from_the_requested_frame(h264: SampleRecording, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    cut(h264, out, start_s=1.5, duration_s=5.0, edit_list=True)
    assert frame_indices(out) == list(range(37, 163))  # 1.5 s lies inside frame 37 (1.48-1.52 s)
    assert ffmpeg_decode_errors(out) == ""
    assert sync_error_s(out, FPS) < 0.025


def test_missing_segment_is_skipped_and_counted(h264: SampleRecording, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    stats = cut(h264, out, start_s=0, duration_s=8, drop={1})
    assert frame_indices(out) == [*range(0, 50), *range(100, 200)]
    assert stats.covered_ms == pytest.approx(6000)
    assert [g.reason for g in stats.gaps] == ["missing"]
    assert ffmpeg_decode_errors(out) == ""
    assert sync_error_s(out, FPS) < 0.025


def test_corrupt_segment_is_skipped(h264: SampleRecording, tmp_path: Path) -> None:
    (h264.directory / h264.segments[2].name).write_bytes(b"\x00garbage" * 5000)
    out = tmp_path / "clip.mp4"
    stats = cut(h264, out, start_s=0, duration_s=8)
    assert frame_indices(out) == [*range(0, 100), *range(150, 200)]
    assert stats.covered_ms == pytest.approx(6000)
    assert ffmpeg_decode_errors(out) == ""


def test_program_date_time_jump_is_a_gap(h264: SampleRecording, tmp_path: Path) -> None:
    text = playlist_text(h264.segments, h264.spec.program_date_time_ms, pdt_jumps_ms={2: 10_000})
    out = tmp_path / "clip.mp4"
    # 0-4 s recorded, 4-14 s nothing, 14-18 s recorded: ask for 2 s .. 16 s
    stats = cut(h264, out, start_s=2, duration_s=14, playlist=text)
    assert frame_indices(out) == list(range(50, 150))
    assert stats.covered_ms == pytest.approx(4000)
    durations = [float(s["duration"]) for s in ffprobe(out)["streams"] if s["codec_type"] == "video"]
    assert durations[0] == pytest.approx(4.0, abs=0.05)  # the hole is cut out, not frozen


def test_discontinuity_and_pts_wrap(tmp_path: Path) -> None:
    spec = SampleSpec(seconds=8, pts_start=PTS_WRAP - 3 * TS_CLOCK, discontinuity_at=frozenset({2}))
    recording = generate_recording(tmp_path / "wrap", spec)
    out = tmp_path / "clip.mp4"
    stats = cut(recording, out, start_s=0.5, duration_s=7)
    assert frame_indices(out) == list(range(0, 188))
    assert stats.covered_ms == pytest.approx(7000)
    assert ffmpeg_decode_errors(out) == ""
    assert sync_error_s(out, FPS) < 0.025


def test_hevc_is_tagged_hvc1(tmp_path: Path) -> None:
    recording = generate_recording(tmp_path / "hevc", SampleSpec(seconds=6, video_codec="hevc", b_frames=2))
    out = tmp_path / "clip.mp4"
    cut(recording, out, start_s=1.2, duration_s=3)
    video = next(s for s in ffprobe(out)["streams"] if s["codec_type"] == "video")
    assert (video["codec_name"], video["codec_tag_string"]) == ("hevc", "hvc1")
    indices = frame_indices(out)
    assert indices[0] == 25
    assert indices[-1] >= 104  # B-frames: a reference shown after the end may be kept
    assert indices == list(range(25, indices[-1] + 1))
    assert ffmpeg_decode_errors(out) == ""
    assert sync_error_s(out, FPS) < 0.025


def test_video_only_recording(tmp_path: Path) -> None:
    recording = generate_recording(tmp_path / "mute", SampleSpec(seconds=4, audio_codec=None))
    out = tmp_path / "clip.mp4"
    stats = cut(recording, out, start_s=1, duration_s=2)
    assert stats.audio_codec is None
    assert frame_indices(out) == list(range(25, 75))


def test_resolution_change_inside_the_range_asks_for_a_re_encode(tmp_path: Path) -> None:
    first = generate_recording(tmp_path / "rec", SampleSpec(seconds=4))
    second = generate_recording(
        tmp_path / "rec",
        SampleSpec(seconds=4, width=192, height=108, first_frame_index=100, segment_prefix="big"),
    )
    segments = [*first.segments, *[replace(s, discontinuity=True) for s in second.segments]]
    text = playlist_text(segments, first.spec.program_date_time_ms)
    # remux cannot carry it; the export pipeline re-encodes (test_recorders: restart_new_resolution)
    with pytest.raises(ParametersChanged, match=r"160x96 yuv420p -> h264 .*192x108"):
        cut(first, tmp_path / "clip.mp4", start_s=1, duration_s=6, playlist=text)
    # A range that stays on one side of the change is fine.
    stats = cut(first, tmp_path / "clip2.mp4", start_s=0, duration_s=4, playlist=text)
    assert stats.video_frames == 100


def test_nothing_readable_is_no_media(h264: SampleRecording, tmp_path: Path) -> None:
    with pytest.raises(NoMedia):
        cut(h264, tmp_path / "clip.mp4", start_s=0, duration_s=4, drop={0, 1, 2, 3})


@pytest.mark.parametrize("edit_list", [False, True])
def test_b_frame_copy_ends_at_the_end_without_skipping(tmp_path: Path, edit_list: bool) -> None:
    """A B-frame shown before the end refers to a P-frame shown after it: the P-frame is in the
    file, but the edit list ends the presentation at the end, and the frame before is not lost."""
    recording = generate_recording(tmp_path / "b", SampleSpec(seconds=6, b_frames=3, audio_codec=None))
    out = tmp_path / "clip.mp4"
    stats = cut(recording, out, start_s=1.0, duration_s=3.3, edit_list=edit_list)
    shown = frame_indices(out)
    # frame 107 (4.28 s) is the last to start before 4.3 s; none is missing before it
    assert shown[-1] == 107 and shown == list(range(shown[0], 108))
    assert stats.video_frames > len(shown)  # the reference past the end was written
    assert ffmpeg_decode_errors(out) == ""


@pytest.mark.parametrize("edit_list", [False, True])
def test_b_frame_copy_across_a_gap_ends_at_the_end(tmp_path: Path, edit_list: bool) -> None:
    """A missing segment inside the range is cut out of the clip; the presentation still ends
    with the last frame before the end, not with a reference past it (the gap is not added)."""
    recording = generate_recording(tmp_path / "b", SampleSpec(seconds=8, b_frames=3, audio_codec=None))
    out = tmp_path / "clip.mp4"
    stats = cut(recording, out, start_s=1.0, duration_s=5.1, drop={1}, edit_list=edit_list)
    shown = frame_indices(out)
    assert shown == [*range(shown[0], 50), *range(100, 153)]  # 152 (6.08 s) starts before 6.1 s
    assert stats.video_frames > len(shown)  # a reference past the end was written, and hidden
    assert stats.covered_ms == pytest.approx(3100, abs=40)
    assert float(ffprobe(out)["format"]["duration"]) == pytest.approx(len(shown) / FPS, abs=0.05)
    assert ffmpeg_decode_errors(out) == ""
