"""A few recorder formats end to end: the real web and worker processes, Redis and S3 over
HTTP; the result downloaded as a client would and judged by its frames and the ffmpeg CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import export_body
from tests.integration.conftest import poll_export
from tests.media import ffmpeg_decode_errors, ffprobe, frame_indices
from tests.recorders import BY_NAME, Recording, record

pytestmark = pytest.mark.integration

START_S, DURATION_S = 1.3, 3.0


def uploaded(s3: Any, root: Path, name: str) -> Recording:
    rec = record(BY_NAME[name], root / name)
    for relative in rec.files:
        s3.upload_file(str(rec.directory / relative), "archive", f"live/rec-{name}/{relative}")
    return rec


def export(
    web: str, session_id: str, rec: Recording, export_type: int, tmp_path: Path, **extra: Any
) -> tuple[dict, Path]:
    body = export_body(
        session_id,
        "alice",
        round(rec.origin_ms),
        round(DURATION_S * 1000),
        StartTime=str(round(START_S * 1000)),
        LivePath=f"live/rec-{rec.case.name}",
        FileName=f"{rec.case.name}-{export_type}",
        export_type=export_type,
        **extra,
    )
    status, answer = poll_export(web, body)
    assert (status, answer["ErrorCode"]) == (200, 5), answer
    clip = tmp_path / "clip.mp4"
    with requests.get(answer["VideoPath"], timeout=30) as response:
        response.raise_for_status()
        clip.write_bytes(response.content)
    return answer, clip


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
    rec = uploaded(s3, tmp_path / "rec", name)
    answer, clip = export(web, session_id, rec, export_type, tmp_path)
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
    rec = uploaded(s3, tmp_path / "rec", "audio_only")
    answer, clip = export(web, session_id, rec, 0, tmp_path)
    assert answer["ImagePath"] == ""
    assert [s["codec_type"] for s in ffprobe(clip)["streams"]] == ["audio"]
    assert ffmpeg_decode_errors(clip) == ""


def test_a_named_rendition_of_a_ladder_end_to_end(
    web: str, worker: subprocess.Popen, session_id: str, s3: Any, tmp_path: Path
) -> None:
    rec = uploaded(s3, tmp_path / "rec", "abr_ladder_one_folder")
    answer, clip = export(web, session_id, rec, 1, tmp_path, Rendition=f"{rec.case.width}x{rec.case.height}")
    video = next(s for s in ffprobe(clip)["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (rec.case.width, rec.case.height)
    assert frame_indices(clip) == rec.shown_in(START_S, START_S + DURATION_S)
    assert answer["LackLength"] <= 40
