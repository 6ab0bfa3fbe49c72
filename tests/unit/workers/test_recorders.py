"""The recorder matrix: recordings as real recorders write them (tests/recorders.py), exported
through the plain export function against S3 (moto in-process), each result judged by frame
indices read from its pixels, by the ffmpeg CLI's decoder, and by its LackLength."""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from scripts.samples import click_onsets
from tasks.exports.spec import ErrorCode, ExportResult, ExportType
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.factories import export_spec
from tests.helpers import moto_buckets
from tests.media import ffmpeg_decode_errors, ffprobe, frame_indices, sync_error_s
from tests.recorders import BY_NAME, CASES, Recording, record
from workers.errors import NoMedia
from workers.jobs.export_pipeline import run_export
from workers.jobs.fencing import NO_JOB_FENCE

START_S, DURATION_S = 1.3, 3.0  # crosses at least one segment boundary in every case
SYNC_S = 0.02  # audio clicks vs their pictures: AAC priming and encoder restarts stay well under this
VIDEO_CASES = [case.name for case in CASES if case.video is not None]
ENCODED_CASES = ["x264_bframes_scenecut", "x265_main10", "fmp4_cmaf", "restart_new_resolution", "vfr"]


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recording]:
    """Recordings made once per session, on first use."""
    return {}


def recording_of(name: str, cache: dict[str, Recording], root: Path) -> Recording:
    if name not in cache:
        cache[name] = record(BY_NAME[name], root / name)
    return cache[name]


@pytest.fixture(scope="session")
def recordings_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recorders")


@pytest.fixture
def s3() -> Iterator[Any]:
    with moto_buckets("archive", "exports") as client:
        yield client


def export(
    s3: Any, rec: Recording, export_type: ExportType, tmp_path: Path, start_s: float = START_S
) -> tuple[ExportResult, Path]:
    for relative in rec.files:
        s3.upload_file(str(rec.directory / relative), "archive", f"live/{rec.case.name}/{relative}")
    spec = export_spec(
        live_path=f"live/{rec.case.name}",
        start_ms=round(rec.origin_ms + start_s * 1000),
        duration_ms=round(DURATION_S * 1000),
        export_type=export_type,
    )
    settings = Settings(work_dir=str(tmp_path))
    result = run_export(spec, ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    clip = tmp_path / "clip.mp4"
    s3.download_file("exports", result.video_key, str(clip))
    return result, clip


def refused_span(rec: Recording) -> tuple[float, float]:
    """Where the absolute-URI case's refused entry sits on the timeline (s)."""
    durations = [
        float(line.split(":", 1)[1].rstrip(","))
        for line in (rec.directory / "index.m3u8").read_text().splitlines()
        if line.startswith("#EXTINF")
    ]
    return durations[0], durations[0] + durations[1]


def expected_frames(rec: Recording, start_s: float, end_s: float) -> list[int]:
    shown = rec.shown_in(start_s, end_s)
    if rec.case.layout == "absolute":
        gap_from, gap_to = refused_span(rec)
        shown = [i for i in shown if not gap_from - 1e-6 <= rec.frame_times[i] < gap_to - 1e-6]
    return shown


def check_lack(rec: Recording, result: ExportResult, start_s: float, end_s: float) -> None:
    frame_ms = 1000 / rec.case.fps
    missing_ms = 0.0
    if rec.case.layout == "absolute":
        gap_from, gap_to = refused_span(rec)
        missing_ms = (min(gap_to, end_s) - max(gap_from, start_s)) * 1000
    assert abs(result.lack_ms - missing_ms) <= math.ceil(frame_ms), (result.lack_ms, missing_ms)


@pytest.mark.parametrize("name", VIDEO_CASES)
def test_stream_copy_holds_the_range_from_a_keyframe(
    name: str,
    s3: Any,
    recordings: dict[str, Recording],
    recordings_root: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = recording_of(name, recordings, recordings_root)
    end_s = START_S + DURATION_S
    result, clip = export(s3, rec, ExportType.COPY, tmp_path)
    wanted = expected_frames(rec, START_S, end_s)
    got = frame_indices(clip)
    assert ffmpeg_decode_errors(clip) == ""
    assert got[-1] == wanted[-1], "nothing past the end, nothing missing before it"
    assert got[0] <= wanted[0] and wanted[0] - got[0] < rec.case.gop, (
        "from the keyframe at or before the start"
    )
    assert [i for i in got if i >= wanted[0]] == wanted, "no frame missing or repeated inside the range"
    check_lack(rec, result, START_S, end_s)
    assert result.image_key.endswith(".jpg")
    if rec.case.audio and not rec.case.vfr:  # each click with the picture of its whole second
        assert sync_error_s(clip, rec.case.fps) < SYNC_S
    # a new resolution is re-encoded, and the logs say so; a restart with the same parameters is not
    assert ("copy export re-encoded" in caplog.text) is (rec.case.layout == "resize")


@pytest.mark.parametrize("name", VIDEO_CASES)
def test_h264_export_holds_exactly_the_requested_frames(
    name: str, s3: Any, recordings: dict[str, Recording], recordings_root: Path, tmp_path: Path
) -> None:
    rec = recording_of(name, recordings, recordings_root)
    end_s = START_S + DURATION_S
    result, clip = export(s3, rec, ExportType.H264, tmp_path)
    assert frame_indices(clip) == expected_frames(rec, START_S, end_s)
    assert ffmpeg_decode_errors(clip) == ""
    check_lack(rec, result, START_S, end_s)
    if rec.case.audio and not rec.case.vfr:  # each click with the picture of its whole second
        assert sync_error_s(clip, rec.case.fps) < SYNC_S


@pytest.mark.parametrize("name", ENCODED_CASES)
def test_h265_export_holds_exactly_the_requested_frames(
    name: str, s3: Any, recordings: dict[str, Recording], recordings_root: Path, tmp_path: Path
) -> None:
    rec = recording_of(name, recordings, recordings_root)
    end_s = START_S + DURATION_S
    result, clip = export(s3, rec, ExportType.H265, tmp_path)
    assert frame_indices(clip) == expected_frames(rec, START_S, end_s)
    assert ffmpeg_decode_errors(clip) == ""
    check_lack(rec, result, START_S, end_s)


@pytest.mark.parametrize("export_type", [ExportType.COPY, ExportType.H264])
def test_audio_only_recording_exports_an_audio_only_mp4(
    export_type: ExportType, s3: Any, recordings: dict[str, Recording], recordings_root: Path, tmp_path: Path
) -> None:
    rec = recording_of("audio_only", recordings, recordings_root)
    result, clip = export(s3, rec, export_type, tmp_path)
    streams = ffprobe(clip)["streams"]
    assert [s["codec_type"] for s in streams] == ["audio"]
    assert ffmpeg_decode_errors(clip) == ""
    assert result.image_key == ""
    assert abs(float(streams[0]["duration"]) - DURATION_S) < 0.05
    # the clicks of whole seconds 2, 3 and 4 land where they were recorded, relative to the start,
    # give or take AAC's priming (1024 samples, 21 ms, in the source and again in the MP4)
    onsets = click_onsets(clip)
    assert [round(t, 2) for t in onsets] == pytest.approx([0.7, 1.7, 2.7], abs=0.05)
    assert [round(b - a, 3) for a, b in pairwise(onsets)] == [1.0, 1.0]
    assert result.lack_ms <= 25


def test_a_playlist_of_absolute_uris_only_is_no_media_with_the_reason(
    s3: Any, recordings: dict[str, Recording], recordings_root: Path, tmp_path: Path
) -> None:
    rec = recording_of("absolute_uri", recordings, recordings_root)
    text = (rec.directory / "index.m3u8").read_text()
    lines = [
        f"https://cdn.example.com/{line}" if line.endswith(".ts") else line for line in text.splitlines()
    ]
    s3.put_object(Bucket="archive", Key="live/cdn/index.m3u8", Body="\n".join(lines).encode())
    settings = Settings(work_dir=str(tmp_path))
    spec = export_spec(live_path="live/cdn", duration_ms=2000)
    with pytest.raises(NoMedia, match="is not a relative path") as raised:
        run_export(spec, ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    assert raised.value.code is ErrorCode.NO_MEDIA


@pytest.mark.parametrize("seconds", [2.0, 4.0])
def test_h264_from_hevc_main10_with_adaptive_b_frames_has_every_frame(
    seconds: float, s3: Any, recordings: dict[str, Recording], recordings_root: Path, tmp_path: Path
) -> None:
    """The issue's case: 2 s came back 47 frames and LackLength 120, 4 s held 101 frames."""
    rec = recording_of("x265_main10", recordings, recordings_root)
    for relative in rec.files:
        s3.upload_file(str(rec.directory / relative), "archive", f"live/main10/{relative}")
    spec = export_spec(
        live_path="live/main10", duration_ms=round(seconds * 1000), export_type=ExportType.H264
    )
    settings = Settings(work_dir=str(tmp_path))
    result = run_export(spec, ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    s3.download_file("exports", result.video_key, str(tmp_path / "clip.mp4"))
    assert frame_indices(tmp_path / "clip.mp4") == list(range(25, 25 + round(seconds * 25)))
    assert result.lack_ms == 0
