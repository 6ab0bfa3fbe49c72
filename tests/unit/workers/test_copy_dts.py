"""A stream copy never drops a packet silently: a video packet whose DTS repeats or steps back is
carried when it can be, is a duplicate when its picture is already in the clip, and is otherwise a
recorded gap counted into LackLength (issue 19, part 2). The broken segments are made from a
generated recording by muxing it again in two runs whose timestamps overlap."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import av
import pytest

from scripts.samples import SampleRecording, SampleSpec, generate_recording
from tests.media import ffmpeg_decode_errors, frame_indices
from workers.archive.playlists import parse_playlist
from workers.media.carry import REASON, VideoCarrier
from workers.media.remux import ClipStats, remux
from workers.media.timeline import SegmentInput, TimedPacket

FPS = 25
FRAME = 90_000 // FPS  # ticks


def restamp(segment: Path, first_run_until: int, second_run_from: int, shift_frames: int) -> None:
    """Rewrite `segment` (video only) as two MPEG-TS runs back to back: pictures
    [0, first_run_until) as they were, then [second_run_from, end) with their timestamps moved
    `shift_frames` earlier. Each run is a valid TS on its own; together the decode times repeat
    or step back where they meet, as a recorder that resends or restamps a stretch leaves them."""
    with av.open(str(segment)) as source:
        packets = [p for p in source.demux(video=0) if p.dts is not None]
        template = source.streams.video[0]
        runs = [(packets[:first_run_until], 0), (packets[second_run_from:], shift_frames * FRAME)]
        parts: list[bytes] = []
        for index, (run, shift) in enumerate(runs):
            part = segment.with_suffix(f".run{index}.ts")
            with av.open(str(part), "w", format="mpegts") as out:
                stream = out.add_stream_from_template(template)
                for packet in run:
                    packet.pts, packet.dts = cast(int, packet.pts) - shift, packet.dts - shift
                    packet.stream = stream
                    out.mux(packet)
            parts.append(part.read_bytes())
            part.unlink()
    segment.write_bytes(b"".join(parts))


@pytest.fixture
def recording(tmp_path: Path) -> SampleRecording:
    """4 s, video only, a keyframe every second, two 2 s segments."""
    return generate_recording(tmp_path / "rec", SampleSpec(seconds=4, audio_codec=None))


def copy_all(recording: SampleRecording, out: Path) -> ClipStats:
    segments = parse_playlist(recording.playlist.read_text(), "rec/index.m3u8", "rec")
    items = [SegmentInput(s, recording.directory / Path(s.key).name) for s in segments]
    return remux(items, segments[0].start_ms, segments[0].start_ms + 4000, out, edit_list=False)


def test_a_picture_shown_before_what_is_decoded_is_a_gap_up_to_the_next_keyframe(
    recording: SampleRecording, tmp_path: Path
) -> None:
    """From picture 15 on, timestamps are one frame early: 15 repeats 14's DTS and PTS, so it
    cannot be carried; 16..24 may predict from it and go with it; 25 is a keyframe."""
    restamp(recording.directory / recording.segments[0].name, 15, 15, shift_frames=1)
    out = tmp_path / "clip.mp4"
    stats = copy_all(recording, out)
    assert frame_indices(out) == [*range(15), *range(25, 100)]
    assert ffmpeg_decode_errors(out) == ""
    assert [gap.reason for gap in stats.gaps] == [REASON]
    assert stats.gaps[0].duration_ms == pytest.approx(400, abs=1)
    assert stats.covered_ms == pytest.approx(3600, abs=1)  # LackLength 400 ms, not 0


def test_a_resent_stretch_is_written_once_and_costs_nothing(
    recording: SampleRecording, tmp_path: Path
) -> None:
    """Pictures 10..14 arrive twice with their own timestamps: the second copies are duplicates."""
    restamp(recording.directory / recording.segments[0].name, 15, 10, shift_frames=0)
    out = tmp_path / "clip.mp4"
    stats = copy_all(recording, out)
    assert frame_indices(out) == list(range(100))
    assert ffmpeg_decode_errors(out) == ""
    assert stats.gaps == []
    assert stats.covered_ms == pytest.approx(4000, abs=1)


def timed(pts: int, dts: int, keyframe: bool = False) -> TimedPacket:
    return TimedPacket(cast(Any, None), "video", pts, dts, FRAME, pts / 90, keyframe)


def test_a_repeated_dts_shown_later_is_carried_right_after_the_last_one() -> None:
    """With B-frames a packet can repeat the last DTS yet be shown later: it is decoded one tick
    after the last one and kept, so nothing is lost."""
    carrier = VideoCarrier()
    assert carrier.dts_for(timed(FRAME, 0, keyframe=True), FRAME, 0, FRAME, True) == 0
    assert carrier.dts_for(timed(4 * FRAME, FRAME), 4 * FRAME, FRAME, FRAME, True) == FRAME
    assert carrier.dts_for(timed(2 * FRAME, FRAME), 2 * FRAME, FRAME, FRAME, True) == FRAME + 1
    assert carrier.gaps == [] and carrier.dropped_ms == 0
