"""A few recorder formats end to end: the real web and worker processes, Redis and S3 over
HTTP; the result downloaded as a client would and judged by its frames and the ffmpeg CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.recorded import DURATION_S, START_S, exported, uploaded
from tests.media import ffmpeg_decode_errors, ffprobe, frame_indices

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("name", "export_type"),
    [
        ("fmp4_cmaf", 0),
        ("single_file_byteranges", 0),
        ("restart_new_resolution", 0),
        ("x265_main10", 1),
        ("aes128_key_rotation", 0),
        ("abr_ladder_subfolders", 0),
    ],
)
def test_recorder_formats_export_end_to_end(
    name: str,
    export_type: int,
    web: str,
    worker: subprocess.Popen,
    session_id: str,
    s3: Any,
    tmp_path: Path,
) -> None:
    rec = uploaded(s3, tmp_path / "rec", name, "rec")
    answer, clip = exported(web, session_id, rec, "rec", export_type, tmp_path)
    wanted = rec.shown_in(START_S, START_S + DURATION_S)
    got = frame_indices(clip)
    if export_type == 0:
        got = [i for i in got if i >= wanted[0]]  # a copy may start at the keyframe before
    assert got == wanted
    assert ffmpeg_decode_errors(clip) == ""
    assert answer["LackLength"] <= 40
    assert answer["ImagePath"].startswith("http")


def test_audio_only_recording_has_no_image(
    web: str, worker: subprocess.Popen, session_id: str, s3: Any, tmp_path: Path
) -> None:
    rec = uploaded(s3, tmp_path / "rec", "audio_only", "rec")
    answer, clip = exported(web, session_id, rec, "rec", 0, tmp_path)
    assert answer["ImagePath"] == ""
    assert [s["codec_type"] for s in ffprobe(clip)["streams"]] == ["audio"]
    assert ffmpeg_decode_errors(clip) == ""


def test_a_named_rendition_of_a_ladder_end_to_end(
    web: str, worker: subprocess.Popen, session_id: str, s3: Any, tmp_path: Path
) -> None:
    rec = uploaded(s3, tmp_path / "rec", "abr_ladder_one_folder", "rec")
    answer, clip = exported(
        web, session_id, rec, "rec", 1, tmp_path, Rendition=f"{rec.case.width}x{rec.case.height}"
    )
    video = next(s for s in ffprobe(clip)["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (rec.case.width, rec.case.height)
    assert frame_indices(clip) == rec.shown_in(START_S, START_S + DURATION_S)
    assert answer["LackLength"] <= 40
