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

from scripts import devstack
from tests.integration.recorded import (
    DURATION_S,
    START_S,
    exported,
    uploaded,
)
from tests.media import ffmpeg_decode_errors, shown_indices

pytestmark = pytest.mark.integration

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


def test_pdt_without_offset_is_utc_on_a_worker_in_shanghai(
    shanghai: dict[str, str], s3: Any, tmp_path: Path
) -> None:
    rec = uploaded(s3, tmp_path / "rec", "camera_pdt_without_offset", "timeline")
    answer, clip = exported(shanghai["WEB"], shanghai["SESSION"], rec, "timeline", 1, tmp_path)
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
    rec = uploaded(s3, tmp_path / "rec", "overlap_restarted_timestamps", "timeline")
    answer, clip = exported(shanghai["WEB"], shanghai["SESSION"], rec, "timeline", export_type, tmp_path)
    wanted = rec.shown_in(START_S, START_S + DURATION_S)
    got = shown_indices(clip)
    if export_type == 0:
        got = [i for i in got if i >= wanted[0]]  # a copy may start at the keyframe before
    assert got == wanted  # each frame index once, none missing
    assert ffmpeg_decode_errors(clip) == ""
    assert answer["LackLength"] <= FRAME_MS
