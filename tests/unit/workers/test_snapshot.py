"""Snapshot frame choice on generated media whose pixels carry each frame's index: the picture
on screen at an instant in the middle of a GOP (B-frames too), from at most one GOP."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from scripts.samples import SampleSpec, generate_recording, read_frame_index
from workers.archive.playlists import parse_playlist
from workers.jobs.snapshot import holding
from workers.media.still import NoPicture, TimedPacket, picture_at, scaled, timeline_packets

PDT_MS = 1_700_000_000_000
FPS = 25


def packets_of(directory: Path, playlist: Path, at_ms: int) -> list[TimedPacket]:
    segments = parse_playlist(playlist.read_text(), "rec/index.m3u8", "rec")
    chosen = holding(segments, at_ms)
    found: list[TimedPacket] = []
    for segment in chosen:
        container = av.open(str(directory / segment.key.rsplit("/", 1)[-1]))
        found += timeline_packets(segment, container)
    return found


@pytest.mark.parametrize("b_frames", [0, 2])
@pytest.mark.parametrize("offset_ms", [0, 1540, 2000, 2999, 3960])
def test_the_picture_on_screen_at_any_instant(tmp_path: Path, b_frames: int, offset_ms: int) -> None:
    rec = generate_recording(tmp_path, SampleSpec(seconds=4, audio_codec=None, b_frames=b_frames))
    packets = packets_of(rec.directory, rec.playlist, PDT_MS + offset_ms)
    frame, decoded = picture_at(packets, PDT_MS + offset_ms)
    assert read_frame_index(frame) == offset_ms * FPS // 1000
    assert decoded <= rec.spec.gop_frames + b_frames + 1  # one GOP at most


def test_before_the_first_keyframe_there_is_no_picture(tmp_path: Path) -> None:
    rec = generate_recording(tmp_path, SampleSpec(seconds=2, audio_codec=None))
    packets = packets_of(rec.directory, rec.playlist, PDT_MS + 500)
    with pytest.raises(NoPicture):
        picture_at(packets, PDT_MS - 500)


def test_scaled_keeps_the_aspect(tmp_path: Path) -> None:
    rec = generate_recording(tmp_path, SampleSpec(seconds=2, audio_codec=None))
    frame, _ = picture_at(packets_of(rec.directory, rec.playlist, PDT_MS + 100), PDT_MS + 100)
    small = scaled(frame, 80)
    assert (small.width, small.height) == (80, 48)
    assert scaled(frame, 0) is frame
