"""The archive index on the real stack: exports from a recording of hourly playlists through the
web and worker processes, the index in the real Redis, lost between exports, and a playlist
replaced under it; every clip judged by the frame indices it holds."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from scripts.samples import SampleSpec, generate_recording
from tests.helpers import export_body
from tests.integration.conftest import poll_export
from tests.integration.test_export_e2e import download
from tests.media import frame_indices

pytestmark = pytest.mark.integration

PDT_MS = 1_700_000_000_000  # where the generated segments' hour starts
HOUR_MS = 3_600_000
FOLDER = "live/hourly"
REAL_HOUR = 3


def iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hour_playlist(hour: int, real: list[tuple[str, str]], subfolder: str) -> str:
    """An hour of 2 s segments; the real hour starts with the generated segments."""
    lines = [
        "#EXTM3U",
        "#EXT-X-TARGETDURATION:2",
        f"#EXT-X-PROGRAM-DATE-TIME:{iso(PDT_MS + (hour - REAL_HOUR) * HOUR_MS)}",
    ]
    entries = real if hour == REAL_HOUR else []
    lines += [line for extinf, name in entries for line in (extinf, f"{subfolder}/{name}")]
    lines += [
        line for n in range(len(entries), 1800) for line in ("#EXTINF:2.000,", f"{subfolder}/s{n:05d}.ts")
    ]
    return "\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n"


@pytest.fixture(scope="module")
def hourly(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> list[tuple[str, str]]:
    """Eight hourly playlists at live/hourly; hour 3 has 6 s of real segments, twice: under h3/
    and under redo/ (for the playlist that replaces it)."""
    rec = generate_recording(tmp_path_factory.mktemp("hourly"), SampleSpec(seconds=6))
    text = (rec.directory / "index.m3u8").read_text().splitlines()
    real = [(line, text[i + 1].strip()) for i, line in enumerate(text) if line.startswith("#EXTINF")]
    for _, name in real:
        for subfolder in ("h3", "redo"):
            s3.upload_file(str(rec.directory / name), "archive", f"{FOLDER}/{subfolder}/{name}")
    for hour in range(8):
        body = hour_playlist(hour, real, f"h{hour}")
        s3.put_object(Bucket="archive", Key=f"{FOLDER}/h{hour}.m3u8", Body=body.encode())
    return real


def export_frames(web: str, session_id: str, start_ms: int, name: str, tmp_path: Path) -> list[int]:
    body = export_body(session_id, "alice", start_ms, 2000, LivePath=FOLDER, FileName=name)
    status, answer = poll_export(web, body)
    assert (status, answer["ErrorCode"], answer["LackLength"]) == (200, 5, 0), answer
    return frame_indices(download(answer["VideoPath"], tmp_path / f"{name}.mp4"))


def test_exports_from_hourly_playlists_survive_a_lost_index_and_a_replaced_playlist(
    web: str, worker: subprocess.Popen, session_id: str, redis_url: str, s3: Any, hourly: Any, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    assert export_frames(web, session_id, PDT_MS + 1000, "first", tmp_path) == list(range(25, 75))
    indexed = list(client.scan_iter("resourced:archive:*"))
    assert any(b":segments:" in key for key in indexed)  # the clip's playlist is packed in Redis

    client.delete(*indexed)  # the index lost (flushed, evicted) between two exports
    assert export_frames(web, session_id, PDT_MS + 2000, "second", tmp_path) == list(range(50, 100))

    # Hour 3 rewritten to name other objects (same media): the index must follow its new ETag.
    s3.put_object(
        Bucket="archive", Key=f"{FOLDER}/h3.m3u8", Body=hour_playlist(REAL_HOUR, hourly, "redo").encode()
    )
    s3.delete_object(Bucket="archive", Key=f"{FOLDER}/h3/seg_00001.ts")  # gone: only redo/ can serve it
    assert export_frames(web, session_id, PDT_MS + 2500, "third", tmp_path) == list(range(62, 113))
