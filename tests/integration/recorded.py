"""Recorder-shaped recordings (tests/recorders.py) in the archive bucket, exported through the
running service and downloaded: the steps the recorder and timeline end-to-end tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from tests.helpers import export_body
from tests.integration.conftest import poll_export
from tests.recorders import BY_NAME, Recording, record, upload

# Off the segment boundaries at both ends; crosses the timeline cases' overlap (2-3 s) and rollover.
START_S, DURATION_S = 1.3, 3.0


def uploaded(s3: Any, root: Path, name: str, area: str) -> Recording:
    """The recorder case `name`, recorded under `root` and uploaded to live/AREA-NAME."""
    rec = record(BY_NAME[name], root / name)
    upload(s3, rec, f"live/{area}-{name}")
    return rec


def exported(
    web: str, session: str, rec: Recording, area: str, export_type: int, tmp_path: Path, **extra: Any
) -> tuple[dict[str, Any], Path]:
    """START_S to START_S + DURATION_S of an uploaded recording, exported (ErrorCode 5 asserted)
    and downloaded; `extra`: more request fields."""
    body = export_body(
        session,
        "alice",
        round(rec.origin_ms),
        round(DURATION_S * 1000),
        StartTime=str(round(START_S * 1000)),
        LivePath=f"live/{area}-{rec.case.name}",
        FileName=f"{area}-{rec.case.name}-{export_type}",
        export_type=export_type,
        **extra,
    )
    status, answer = poll_export(web, body)
    assert (status, answer["ErrorCode"]) == (200, 5), answer
    clip = tmp_path / f"clip-{export_type}.mp4"
    with requests.get(answer["VideoPath"], timeout=30) as response:
        response.raise_for_status()
        clip.write_bytes(response.content)
    return answer, clip
