"""Exports through the real web and worker processes, Redis and S3 over HTTP, judged by
downloading the result the way a client does and decoding it with ffprobe and PyAV."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from scripts.samples import SampleSpec, generate_recording
from tasks.exports.spec import ErrorCode
from tasks.platform import keys
from tests.helpers import export_body, restart_at_new_size, upload_recording
from tests.integration.conftest import poll_export
from tests.media import (
    ffmpeg_decode_errors,
    ffprobe,
    first_frame_index,
    frame_indices,
    moov_before_mdat,
    sync_error_s,
)

pytestmark = pytest.mark.integration

PDT_MS = 1_700_000_000_000


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> str:
    """An 8 s H.264+AAC recording with PROGRAM-DATE-TIME at live/e2e."""
    rec = generate_recording(tmp_path_factory.mktemp("rec"), SampleSpec(seconds=8))
    upload_recording(s3, "archive", "live/e2e", rec)
    return "live/e2e"


def download(url: str, path: Path) -> Path:
    with requests.get(url, timeout=30, stream=True) as response:
        response.raise_for_status()
        with path.open("wb") as handle:
            for chunk in response.iter_content(1 << 20):
                handle.write(chunk)
    return path


def test_export_to_ready_and_download(
    web: str, worker: subprocess.Popen, session_id: str, recording: str, s3: Any, tmp_path: Path
) -> None:
    body = export_body(
        session_id, "alice", PDT_MS, 4000, StartTime="2500", LivePath=recording, FileName="e2e"
    )
    status, answer = poll_export(web, body)
    assert (status, answer["ErrorCode"]) == (200, 5), answer
    assert answer["LackLength"] == 0
    s3_dir = answer["S3Dir"]
    head = s3.head_object(Bucket="exports", Key=f"{s3_dir}/e2e.mp4")
    assert answer["Version"] == head["ETag"].strip('"')
    assert head["ContentType"] == "video/mp4"

    video = download(answer["VideoPath"], tmp_path / "clip.mp4")
    assert moov_before_mdat(video)
    # An edit list presents from frame 62 (2.48-2.52 s holds 2.5 s) to frame 162 (6.48-6.52 s).
    assert frame_indices(video) == list(range(62, 163))
    assert ffmpeg_decode_errors(video) == ""
    probe = {s["codec_type"]: s for s in ffprobe(video)["streams"]}
    assert probe["video"]["codec_name"] == "h264" and probe["audio"]["codec_name"] == "aac"
    assert sync_error_s(video, 25) < 0.025

    image = download(answer["ImagePath"], tmp_path / "first.jpg")
    assert image.read_bytes()[:3] == b"\xff\xd8\xff"
    assert first_frame_index(image) == 62

    again_status, again = poll_export(web, body)
    assert (again_status, again["ErrorCode"], again["Version"]) == (200, 5, answer["Version"])


def test_identical_concurrent_requests_run_one_export(
    web: str, worker: subprocess.Popen, session_id: str, recording: str, redis_url: str, s3: Any
) -> None:
    body = export_body(session_id, "alice", PDT_MS, 3000, StartTime=1000, LivePath=recording, FileName="dup")
    answers: list[dict[str, Any]] = []

    def send() -> None:
        response = requests.post(f"{web}/resource/v1/i/export-to-s3dir", json=body, timeout=10)
        answers.append(response.json())

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a["ErrorCode"] for a in answers} <= {1, 5}
    assert len({a["JobId"] for a in answers}) == 1  # one job, whoever won the race
    _, answer = poll_export(web, body)
    assert answer["ErrorCode"] == 5
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    video_key = f"{answer['S3Dir']}/dup.mp4"
    assert client.get(keys.destination_claim("exports", video_key)) is None  # no claim outlives its job
    assert s3.head_object(Bucket="exports", Key=video_key)["Metadata"]["owner"] == "alice"
    records = [
        k
        for k in client.scan_iter("resourced:export:*")
        if client.hget(k, "spec") and "dup.mp4" in client.hget(k, "spec")
    ]
    assert len(records) == 1
    assert client.hget(records[0], "attempt") == "1"
    assert client.hget(records[0], "deliveries") == "1"


def test_missing_segment_counts_into_lack_length(
    web: str, worker: subprocess.Popen, session_id: str, s3: Any, tmp_path: Path
) -> None:
    rec = generate_recording(tmp_path / "gap", SampleSpec(seconds=8))
    upload_recording(s3, "archive", "live/gap", rec)
    s3.delete_object(Bucket="archive", Key=f"live/gap/{rec.segments[1].name}")
    body = export_body(session_id, "alice", PDT_MS, 6000, LivePath="live/gap", FileName="gap")
    _, answer = poll_export(web, body)
    assert answer["ErrorCode"] == 5, answer
    assert answer["LackLength"] == 2000
    assert frame_indices(download(answer["VideoPath"], tmp_path / "gap.mp4")) == [
        *range(0, 50),
        *range(100, 150),
    ]


def test_range_without_media_is_404(
    web: str, worker: subprocess.Popen, session_id: str, recording: str
) -> None:
    body = export_body(session_id, "alice", PDT_MS + 3_600_000, 4000, LivePath=recording)
    status, answer = poll_export(web, body)
    assert (status, answer["ErrorCode"]) == (404, int(ErrorCode.NO_MEDIA))


def test_unknown_recording_is_404(web: str, worker: subprocess.Popen, session_id: str) -> None:
    body = export_body(session_id, "alice", PDT_MS, 4000, LivePath="live/nothing-here")
    status, answer = poll_export(web, body)
    assert (status, answer["ErrorCode"]) == (404, 4)


def test_bad_request_over_http(web: str, session_id: str) -> None:
    response = requests.post(
        f"{web}/resource/v1/i/export-to-s3dir", json=export_body(session_id, "alice", PDT_MS, -1), timeout=10
    )
    assert response.status_code == 400
    assert response.json()["ErrorCode"] == 2 and "Duration" in response.json()["ErrorMessage"]
    garbage = requests.post(f"{web}/resource/v1/i/export-to-s3dir", data=b"\x00\xff{", timeout=10)
    assert garbage.status_code == 400 and garbage.json()["ErrorCode"] == 2


@pytest.mark.parametrize(("export_type", "codec", "tag"), [(1, "h264", "avc1"), (2, "hevc", "hvc1")])
def test_encoded_exports_are_frame_exact(
    web: str,
    worker: subprocess.Popen,
    session_id: str,
    recording: str,
    tmp_path: Path,
    export_type: int,
    codec: str,
    tag: str,
) -> None:
    body = export_body(
        session_id,
        "alice",
        PDT_MS,
        3000,
        StartTime=1230,
        LivePath=recording,
        FileName=f"type{export_type}",
        export_type=export_type,
    )
    status, answer = poll_export(web, body)
    assert (status, answer["ErrorCode"]) == (200, 5), answer
    video = download(answer["VideoPath"], tmp_path / "clip.mp4")
    assert frame_indices(video) == list(range(30, 106))  # 1.23 s is inside frame 30, 4.23 s inside 105
    stream = next(s for s in ffprobe(video)["streams"] if s["codec_type"] == "video")
    assert (stream["codec_name"], stream["codec_tag_string"]) == (codec, tag)
    assert sync_error_s(video, 25) < 0.025
    assert first_frame_index(download(answer["ImagePath"], tmp_path / "first.jpg")) == 30


RESIZE_BIG_S, RESIZE_SMALL_S = 10, 2  # ~24 MiB of 20 Mbit/s video before the change: past the
# service's 6 MiB held head and two 8 MiB parts, so the copy's upload has shipped media parts


@pytest.fixture(scope="module")
def resized_recording(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> str:
    """An encoder restart at a new resolution after ~24 MiB of video, at live/e2e-resized."""
    rec = restart_at_new_size(tmp_path_factory.mktemp("resized"), RESIZE_BIG_S, RESIZE_SMALL_S, PDT_MS)
    upload_recording(s3, "archive", "live/e2e-resized", rec[0])
    return "live/e2e-resized"


def test_a_copy_across_a_new_resolution_after_shipped_parts_is_a_whole_mp4(
    web: str, worker: subprocess.Popen, session_id: str, resized_recording: str, tmp_path: Path
) -> None:
    """Issue 19: the copy's streaming upload had already shipped parts when the change forced a
    re-encode; the object used to be the re-encode's header over the copy's media (ErrorCode 5,
    decoders stop after ~65 frames). Now it decodes every frame, each the expected one."""
    seconds = RESIZE_BIG_S + RESIZE_SMALL_S
    body = export_body(
        session_id, "alice", PDT_MS, seconds * 1000, LivePath=resized_recording, FileName="resized"
    )
    status, answer = poll_export(web, body, timeout_s=180)
    assert (status, answer["ErrorCode"], answer["LackLength"]) == (200, 5, 0), answer
    video = download(answer["VideoPath"], tmp_path / "resized.mp4")
    assert ffmpeg_decode_errors(video) == ""
    assert frame_indices(video) == list(range(seconds * 25))
