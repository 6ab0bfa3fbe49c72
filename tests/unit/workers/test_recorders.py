"""The recorder matrix: recordings as real recorders write them (tests/recorders.py), exported
through the plain export function against S3 (moto in-process), each result judged by frame
indices read from its pixels, by the ffmpeg CLI's decoder, and by its LackLength."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from scripts.samples import click_onsets
from tasks.exports.spec import ErrorCode, ExportResult, ExportType, S3Location
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.factories import export_spec
from tests.helpers import moto_buckets
from tests.media import ffmpeg_decode_errors, ffprobe, frame_indices, shown_indices, sync_error_s
from tests.recorders import AES_KEYS, BY_NAME, CASES, LIVE_PRESETS, Recording, record, upload
from workers.archive.index import ArchiveIndex
from workers.archive.renditions import list_renditions
from workers.errors import ExportError, NoMedia
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


def keys_passed_to(store: ObjectStore, method: str) -> list[str]:
    """Every key `store.<method>` is called with from now on, in order: what an export reads."""
    keys: list[str] = []
    original = getattr(store, method)

    def counting(bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
        keys.append(key)
        return original(bucket, key, *args, **kwargs)

    setattr(store, method, counting)
    return keys


def export(
    s3: Any,
    rec: Recording,
    export_type: ExportType,
    tmp_path: Path,
    start_s: float = START_S,
    duration_s: float = DURATION_S,
    rendition: str = "",
) -> tuple[ExportResult, Path]:
    upload(s3, rec, f"live/{rec.case.name}")
    spec = export_spec(
        live_path=f"live/{rec.case.name}",
        start_ms=round(rec.origin_ms + start_s * 1000),
        duration_ms=round(duration_s * 1000),
        export_type=export_type,
        rendition=rendition,
    )
    settings = Settings(work_dir=str(tmp_path))
    result = run_export(spec, ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    clip = tmp_path / "clip.mp4"
    s3.download_file("exports", result.video_key, str(clip))
    return result, clip


GAP_LAYOUTS = {"absolute", "gap"}  # the second entry is a gap: refused, or marked #EXT-X-GAP


def refused_span(rec: Recording) -> tuple[float, float]:
    """Where the absolute-URI or GAP case's refused entry sits on the timeline (s)."""
    durations = [
        float(line.split(":", 1)[1].rstrip(","))
        for line in (rec.directory / "index.m3u8").read_text().splitlines()
        if line.startswith("#EXTINF")
    ]
    return durations[0], durations[0] + durations[1]


def expected_frames(rec: Recording, start_s: float, end_s: float) -> list[int]:
    shown = rec.shown_in(start_s, end_s)
    if rec.case.layout in GAP_LAYOUTS:
        gap_from, gap_to = refused_span(rec)
        shown = [i for i in shown if not gap_from - 1e-6 <= rec.frame_times[i] < gap_to - 1e-6]
    return shown


def check_lack(rec: Recording, result: ExportResult, start_s: float, end_s: float) -> None:
    frame_ms = 1000 / rec.case.fps
    missing_ms = 0.0
    if rec.case.layout in GAP_LAYOUTS:
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
    assert shown_indices(clip) == got, "no picture shown twice (overlapping playlists)"
    check_lack(rec, result, START_S, end_s)
    assert result.image_key.endswith(".jpg")
    if rec.case.audio and not rec.case.vfr:  # each click with the picture of its whole second
        assert sync_error_s(clip, rec.case.fps) < SYNC_S
    # a new resolution is re-encoded, and the logs say so; a restart with the same parameters is
    # not; an overlap's handover is re-encoded only where B-frames reorder across it
    reencoded = "copy export re-encoded" in caplog.text
    if rec.case.layout != "overlap":
        assert reencoded is (rec.case.layout == "resize")
    elif "-bf" in rec.case.video_args:
        assert not reencoded, "a clean handover is still a copy"


@pytest.mark.parametrize("name", VIDEO_CASES)
def test_h264_export_holds_exactly_the_requested_frames(
    name: str, s3: Any, recordings: dict[str, Recording], recordings_root: Path, tmp_path: Path
) -> None:
    rec = recording_of(name, recordings, recordings_root)
    end_s = START_S + DURATION_S
    result, clip = export(s3, rec, ExportType.H264, tmp_path)
    assert shown_indices(clip) == expected_frames(rec, START_S, end_s)  # each picture once
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
    upload(s3, rec, "live/main10")
    spec = export_spec(
        live_path="live/main10", duration_ms=round(seconds * 1000), export_type=ExportType.H264
    )
    settings = Settings(work_dir=str(tmp_path))
    result = run_export(spec, ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    s3.download_file("exports", result.video_key, str(tmp_path / "clip.mp4"))
    assert frame_indices(tmp_path / "clip.mp4") == list(range(25, 25 + round(seconds * 25)))
    assert result.lack_ms == 0


# -- packagers (issue 20) ---------------------------------------------------------------------


def video_size(clip: Path) -> tuple[int, int]:
    video = next(s for s in ffprobe(clip)["streams"] if s["codec_type"] == "video")
    return int(video["width"]), int(video["height"])


@pytest.mark.parametrize("name", ["abr_ladder_subfolders", "abr_ladder_one_folder"])
@pytest.mark.parametrize(("rendition", "scale"), [("", 2), ("160x96", 1), ("stream_1", 2), ("stream_0", 1)])
def test_an_abr_ladder_exports_one_rendition_the_best_unless_named(
    name: str,
    rendition: str,
    scale: int,
    s3: Any,
    recordings: dict[str, Recording],
    recordings_root: Path,
    tmp_path: Path,
) -> None:
    """ffmpeg's -var_stream_map ladder: stream_0 is the source size, stream_1 twice it. Every
    frame comes from the chosen rendition once; they are never spliced together."""
    rec = recording_of(name, recordings, recordings_root)
    result, clip = export(s3, rec, ExportType.H264, tmp_path, rendition=rendition)
    assert video_size(clip) == (scale * rec.case.width, scale * rec.case.height)
    assert frame_indices(clip) == expected_frames(rec, START_S, START_S + DURATION_S)
    assert ffmpeg_decode_errors(clip) == ""
    check_lack(rec, result, START_S, START_S + DURATION_S)


def test_a_rendition_the_ladder_lacks_is_a_bad_request_naming_those_it_has(
    s3: Any, recordings: dict[str, Recording], recordings_root: Path, tmp_path: Path
) -> None:
    rec = recording_of("abr_ladder_subfolders", recordings, recordings_root)
    with pytest.raises(
        ExportError, match=r"'1920x1080' is not one of: stream_1/playlist.m3u8 \(320x192\)"
    ) as raised:
        export(s3, rec, ExportType.COPY, tmp_path, rendition="1920x1080")
    assert raised.value.code is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("name", ["abr_ladder_subfolders", "abr_ladder_one_folder"])
def test_renditions_are_listed_from_the_master_without_reading_a_segment(
    name: str, s3: Any, recordings: dict[str, Recording], recordings_root: Path, tmp_path: Path
) -> None:
    rec = recording_of(name, recordings, recordings_root)
    upload(s3, rec, f"live/{name}")
    store = ObjectStore(Settings(work_dir=str(tmp_path)))
    read = keys_passed_to(store, "get_bytes")
    index = ArchiveIndex(fakeredis.FakeRedis(), "rec", 3600, 1 << 20)
    folder = "stream_%d/playlist" if name == "abr_ladder_subfolders" else "stream_%d"
    for _ in range(2):  # cold, then from the index
        renditions = list_renditions(store, index, S3Location("archive", "us-east-1"), f"live/{name}")
        assert [(r.name, r.width, r.height) for r in renditions] == [
            (f"{folder % 1}.m3u8", 320, 192),
            (f"{folder % 0}.m3u8", 160, 96),
        ]
        assert all(r.bandwidth > 0 and r.codecs.startswith("avc1") for r in renditions)
    assert not [key for key in read if not key.endswith(".m3u8")], "no segment is read"
    assert read.count(f"live/{name}/master.m3u8") == 1, "the second listing comes from the index"


def test_aes128_with_key_rotation_reads_each_key_once_and_never_logs_it(
    s3: Any,
    recordings: dict[str, Recording],
    recordings_root: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Key 0 with an explicit IV, key 1 (in keys/) for two segments with the implicit IV, then
    METHOD=NONE."""
    rec = recording_of("aes128_key_rotation", recordings, recordings_root)
    upload(s3, rec, "live/aes")
    settings = Settings(work_dir=str(tmp_path))
    store = ObjectStore(settings)
    read = keys_passed_to(store, "get_bytes")
    caplog.set_level("DEBUG")
    spec = export_spec(live_path="live/aes", start_ms=0, duration_ms=8000, export_type=ExportType.H264)
    result = run_export(spec, store, settings, fence=NO_JOB_FENCE)
    s3.download_file("exports", result.video_key, str(tmp_path / "clip.mp4"))
    assert frame_indices(tmp_path / "clip.mp4") == list(range(200))
    assert result.lack_ms == 0
    assert sorted(k for k in read if k.endswith(".key")) == ["live/aes/k0.key", "live/aes/keys/k1.key"]
    for key in AES_KEYS:
        assert key.hex() not in caplog.text and repr(key) not in caplog.text


@pytest.mark.parametrize(
    ("key_line", "reason"),
    [
        ('#EXT-X-KEY:METHOD=AES-128,URI="../other/k0.key"', "key URI '../other/k0.key' leaves the recording"),
        ('#EXT-X-KEY:METHOD=AES-128,URI="https://keys.example.com/k0"', "is not a relative path"),
        ('#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k0.key"', "SAMPLE-AES encryption"),
    ],
)
def test_an_unusable_key_is_a_gap_and_no_media_with_the_reason(
    key_line: str,
    reason: str,
    s3: Any,
    recordings: dict[str, Recording],
    recordings_root: Path,
    tmp_path: Path,
) -> None:
    """A key outside the recording's folder is never fetched, even where an object lies there."""
    rec = recording_of("aes128_key_rotation", recordings, recordings_root)
    s3.put_object(Bucket="archive", Key="live/other/k0.key", Body=AES_KEYS[0])
    text = (rec.directory / "index.m3u8").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#EXT-X-KEY")]
    lines.insert(lines.index("#EXT-X-MEDIA-SEQUENCE:0") + 1, key_line)
    for relative in rec.files:
        if relative.suffix == ".ts":
            s3.upload_file(str(rec.directory / relative), "archive", f"live/bad/{relative}")
    s3.put_object(Bucket="archive", Key="live/bad/index.m3u8", Body="\n".join(lines).encode())
    settings = Settings(work_dir=str(tmp_path))
    spec = export_spec(live_path="live/bad", start_ms=0, duration_ms=6000)
    with pytest.raises(NoMedia, match=re.escape(reason)) as raised:
        run_export(spec, ObjectStore(settings), settings, fence=NO_JOB_FENCE)
    assert raised.value.code is ErrorCode.NO_MEDIA


def test_a_gap_entry_is_never_read(
    s3: Any, recordings: dict[str, Recording], recordings_root: Path, tmp_path: Path
) -> None:
    """Its object exists and holds other media (the first segment's frames again)."""
    rec = recording_of("gap_entry", recordings, recordings_root)
    gap_uri = next(
        line
        for line in (rec.directory / "index.m3u8").read_text().split("#EXT-X-GAP\n")[1].splitlines()
        if not line.startswith("#")
    )
    settings = Settings(work_dir=str(tmp_path))
    store = ObjectStore(settings)
    downloaded = keys_passed_to(store, "download")
    upload(s3, rec, "live/gap")
    spec = export_spec(live_path="live/gap", start_ms=0, duration_ms=6000, export_type=ExportType.H264)
    result = run_export(spec, store, settings, fence=NO_JOB_FENCE)
    assert f"live/gap/{gap_uri}" not in downloaded and downloaded
    s3.download_file("exports", result.video_key, str(tmp_path / "clip.mp4"))
    gap_from, gap_to = refused_span(rec)
    assert frame_indices(tmp_path / "clip.mp4") == expected_frames(rec, 0, 6)
    assert abs(result.lack_ms - (gap_to - gap_from) * 1000) <= 40


LIVE_RANGES = [(4.0, 10.0), (4.3, 9.4)]  # on segment boundaries ([4 s, 14 s)), and off them
LIVE_REPRESENTATIVES = {case.name for case in LIVE_PRESETS[:2]}


@pytest.mark.parametrize(
    "name",
    [
        case.name if case.name in LIVE_REPRESENTATIVES else pytest.param(case.name, marks=pytest.mark.slow)
        for case in LIVE_PRESETS
    ],
)
@pytest.mark.parametrize("export_type", [ExportType.COPY, ExportType.H264])
@pytest.mark.parametrize(("start_s", "duration_s"), LIVE_RANGES)
def test_live_encoder_presets_hold_every_frame_of_the_range(
    name: str,
    export_type: ExportType,
    start_s: float,
    duration_s: float,
    s3: Any,
    recordings: dict[str, Recording],
    recordings_root: Path,
    tmp_path: Path,
) -> None:
    """x265 -preset ultrafast codes the picture before each keyframe after it (an open GOP's
    leading picture), in the next segment: a range ending on that segment's start needs it."""
    rec = recording_of(name, recordings, recordings_root)
    result, clip = export(s3, rec, export_type, tmp_path, start_s, duration_s)
    wanted = rec.shown_in(start_s, start_s + duration_s)
    got = frame_indices(clip)
    if export_type is ExportType.COPY:
        assert got[0] <= wanted[0] and wanted[0] - got[0] < rec.case.gop
        got = [i for i in got if i >= wanted[0]]
    assert got == wanted
    assert ffmpeg_decode_errors(clip) == ""
    assert result.lack_ms <= 40


@pytest.mark.parametrize("export_type", [ExportType.COPY, ExportType.H264])
def test_timed_id3_and_scte35_streams_are_dropped_without_breaking_the_cut(
    export_type: ExportType, s3: Any, recordings: dict[str, Recording], recordings_root: Path, tmp_path: Path
) -> None:
    """docs/recorders.md: an MP4 has no place for either; the pictures and sound are exact."""
    rec = recording_of("ts_id3_scte35", recordings, recordings_root)
    source = ffprobe(rec.directory / "seg000.ts")["streams"]
    assert {s["codec_type"] for s in source} == {"video", "audio", "data"}
    result, clip = export(s3, rec, export_type, tmp_path)
    assert [s["codec_type"] for s in ffprobe(clip)["streams"]] == ["video", "audio"]
    wanted = expected_frames(rec, START_S, START_S + DURATION_S)
    assert [i for i in frame_indices(clip) if i >= wanted[0]] == wanted
    assert ffmpeg_decode_errors(clip) == ""
    check_lack(rec, result, START_S, START_S + DURATION_S)


def test_a_camera_writing_pdt_without_offset_exports_the_same_on_a_host_in_another_zone(
    s3: Any,
    recordings: dict[str, Recording],
    recordings_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's TZ is Asia/Shanghai; offset-less PROGRAM-DATE-TIME is still read as UTC
    (RESOURCED_PDT_ZONE's default), so the range is found and cut frame-exactly."""
    rec = recording_of("camera_pdt_without_offset", recordings, recordings_root)
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        result, clip = export(s3, rec, ExportType.H264, tmp_path)
    finally:
        monkeypatch.undo()
        time.tzset()
    end_s = START_S + DURATION_S
    assert shown_indices(clip) == expected_frames(rec, START_S, end_s)
    check_lack(rec, result, START_S, end_s)


@pytest.mark.parametrize("start_s", [1.9, 2.0, 2.1, 2.5])
@pytest.mark.parametrize("export_type", [ExportType.COPY, ExportType.H264])
@pytest.mark.parametrize("name", ["overlap_restarted_timestamps", "overlap_without_bframes"])
def test_a_range_starting_around_an_overlaps_handover_has_each_picture_once(
    name: str,
    start_s: float,
    export_type: ExportType,
    s3: Any,
    recordings: dict[str, Recording],
    recordings_root: Path,
    tmp_path: Path,
) -> None:
    """The first playlist's GOP that the second takes over from may end before the range or
    straddle its start; either way the second's pictures are all there, each once."""
    rec = recording_of(name, recordings, recordings_root)
    result, clip = export(s3, rec, export_type, tmp_path, start_s=start_s)
    wanted = expected_frames(rec, start_s, start_s + DURATION_S)
    got = shown_indices(clip)
    if export_type is ExportType.COPY:
        got = [i for i in got if i >= wanted[0]]
    assert got == wanted
    check_lack(rec, result, start_s, start_s + DURATION_S)
