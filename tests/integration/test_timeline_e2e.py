"""The recording's timeline through the Procfile's processes: a web and a worker whose host
zone is Asia/Shanghai, the job Redis and a separate index Redis (RESOURCED_INDEX_REDIS_URL),
moto's S3 server over HTTP. A camera writing PROGRAM-DATE-TIME without an offset is cut
frame-exactly; two playlists that overlap by a second (the second restarting its timestamps)
give each picture once, as a copy and as H.264. This module runs its own Redis pair and web,
so it decides which worker exists: no UTC-zoned worker can take its jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from scripts import devstack
from tests.helpers import export_body
from tests.integration.conftest import poll_export
from tests.media import ffmpeg_decode_errors, shown_indices
from tests.recorders import BY_NAME, Recording, record

pytestmark = pytest.mark.integration

START_S, DURATION_S = 1.3, 3.0  # crosses the overlap's second (2.0-3.0 s) and the rollover
FRAME_MS = 40  # 25 fps: LackLength within one frame


@pytest.fixture(scope="module")
def shanghai(service_env: dict[str, str], logs_dir: Path, s3: Any) -> Iterator[dict[str, str]]:
    """Web and one worker with TZ=Asia/Shanghai, the index on a Redis of its own."""
    with (
        devstack.redis_server(logs_dir / "redis-timeline.log") as jobs_url,
        devstack.redis_server(logs_dir / "redis-timeline-index.log") as index_url,
    ):
        env = {
            **service_env,
            "TZ": "Asia/Shanghai",
            "RESOURCED_REDIS_URL": jobs_url,
            "RESOURCED_INDEX_REDIS_URL": index_url,
        }
        with devstack.service(env, logs_dir, "timeline", workers=1) as base:
            yield {**env, "WEB": base, "SESSION": devstack.issue_session(env, "alice")}


def uploaded(s3: Any, root: Path, name: str) -> Recording:
    rec = record(BY_NAME[name], root / name)
    for relative in rec.files:
        s3.upload_file(str(rec.directory / relative), "archive", f"live/timeline-{name}/{relative}")
    return rec


def export(stack: dict[str, str], rec: Recording, export_type: int, tmp_path: Path) -> tuple[dict, Path]:
    body = export_body(
        stack["SESSION"],
        "alice",
        round(rec.origin_ms),
        round(DURATION_S * 1000),
        StartTime=str(round(START_S * 1000)),
        LivePath=f"live/timeline-{rec.case.name}",
        FileName=f"timeline-{rec.case.name}-{export_type}",
        export_type=export_type,
    )
    status, answer = poll_export(stack["WEB"], body)
    assert (status, answer["ErrorCode"]) == (200, 5), answer
    clip = tmp_path / f"clip-{export_type}.mp4"
    with requests.get(answer["VideoPath"], timeout=30) as response:
        response.raise_for_status()
        clip.write_bytes(response.content)
    return answer, clip


def test_pdt_without_offset_is_utc_on_a_worker_in_shanghai(
    shanghai: dict[str, str], s3: Any, tmp_path: Path
) -> None:
    rec = uploaded(s3, tmp_path / "rec", "camera_pdt_without_offset")
    answer, clip = export(shanghai, rec, 1, tmp_path)
    assert shown_indices(clip) == rec.shown_in(START_S, START_S + DURATION_S)
    assert ffmpeg_decode_errors(clip) == ""
    assert answer["LackLength"] <= FRAME_MS
    index = redis.Redis.from_url(shanghai["RESOURCED_INDEX_REDIS_URL"])
    jobs = redis.Redis.from_url(shanghai["RESOURCED_REDIS_URL"])
    assert list(index.scan_iter("resourced:archive:*")) != []  # the index went to its own Redis
    assert list(jobs.scan_iter("resourced:archive:*")) == []


@pytest.mark.parametrize("export_type", [0, 1])
def test_overlapping_playlists_give_each_picture_once(
    export_type: int, shanghai: dict[str, str], s3: Any, tmp_path: Path
) -> None:
    rec = uploaded(s3, tmp_path / "rec", "overlap_restarted_timestamps")
    answer, clip = export(shanghai, rec, export_type, tmp_path)
    wanted = rec.shown_in(START_S, START_S + DURATION_S)
    got = shown_indices(clip)
    if export_type == 0:
        got = [i for i in got if i >= wanted[0]]  # a copy may start at the keyframe before
    assert got == wanted  # each frame index once, none missing
    assert ffmpeg_decode_errors(clip) == ""
    assert answer["LackLength"] <= FRAME_MS
