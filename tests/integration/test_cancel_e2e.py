"""Cancelling and listing exports through the Procfile's web and worker, real Redis and moto's
S3 over HTTP: a long transcode stops within seconds, leaves nothing in S3, and its worker is free
again; another user can neither cancel nor see it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from scripts import devstack
from scripts.samples import SampleSpec, generate_recording
from tests.helpers import export_body, upload_recording
from tests.integration.conftest import poll_export

pytestmark = pytest.mark.integration
PDT_MS = 1_700_000_000_000
CANCEL, LIST = "/resource/v1/i/export-cancel", "/resource/v1/i/exports"
STOPPED_WITHIN_S = 15  # "a few seconds": a renewal every 2 s, a GOP's encode, an upload abort


@pytest.fixture(scope="module")
def long_recording(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A minute of noise-like 640x360: an H.265 export of it runs long enough to be cancelled."""
    spec = SampleSpec(seconds=60, width=640, height=360, noise=True, bit_rate=2_000_000, gop_frames=50)
    upload_recording(s3, "archive", "live/cancel", generate_recording(tmp_path_factory.mktemp("long"), spec))
    return "live/cancel"


def listing(web: str, session: str, **params: str) -> list[dict[str, Any]]:
    answer = requests.get(web + LIST, params=params, headers={"X-Session-Id": session}, timeout=10).json()
    assert answer["ErrorCode"] == 0, answer
    return list(answer["Exports"])


def wait_running(web: str, session: str, job_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(e["JobId"] == job_id and e["Progress"] > 0 for e in listing(web, session, state="running")):
            return
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} never ran")


def fenced_in_log(log: Path, job_id: str) -> bool:
    return any("fenced off" in line and job_id in line for line in log.read_text().splitlines())


def test_a_running_transcode_is_cancelled_and_leaves_nothing(
    web: str,
    worker: subprocess.Popen,
    service_env: dict[str, str],
    session_id: str,
    long_recording: str,
    s3: Any,
    logs_dir: Path,
) -> None:
    body = export_body(
        session_id,
        "alice",
        PDT_MS,
        60_000,
        LivePath=long_recording,
        export_type=2,
        ExportS3Bucket="exports",
        ExportS3Key="cancelled/long.mp4",
    )
    first = requests.post(web + "/resource/v1/i/export-to-s3dir", json=body, timeout=10).json()
    assert first["ErrorCode"] == 1, first
    job_id = first["JobId"]
    wait_running(web, session_id, job_id)

    mallory = devstack.issue_session(service_env, "mallory")
    refused = requests.post(
        web + CANCEL, json={"JobId": job_id, "SessionId": mallory, "userid": "mallory"}, timeout=10
    )
    assert (refused.status_code, refused.json()["ErrorCode"]) == (403, 3)
    assert job_id not in {e["JobId"] for e in listing(web, mallory)}  # nor shown to another user
    assert any(e["JobId"] == job_id for e in listing(web, session_id, state="running"))  # untouched

    cancelled = requests.post(web + CANCEL, json=body, timeout=10)
    stopped_at = time.monotonic()
    assert (cancelled.status_code, cancelled.json()["ErrorCode"], cancelled.json()["JobId"]) == (
        200,
        9,
        job_id,
    )
    while not fenced_in_log(logs_dir / "worker.log", job_id):  # the attempt stopped and freed its slot
        assert time.monotonic() - stopped_at < STOPPED_WITHIN_S, "the attempt kept running after the cancel"
        time.sleep(0.2)
    assert (
        requests.post(web + "/resource/v1/i/export-to-s3dir", json=body, timeout=10).json()["ErrorCode"] == 9
    )
    versions = s3.list_object_versions(Bucket="exports", Prefix="cancelled/")
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []
    uploads = s3.list_multipart_uploads(Bucket="exports", Prefix="cancelled/")
    assert uploads.get("Uploads", []) == []
    entry = next(e for e in listing(web, session_id, state="cancelled") if e["JobId"] == job_id)
    assert entry["Answer"]["ErrorCode"] == 9 and entry["EndedAt"] is not None

    short = export_body(session_id, "alice", PDT_MS, 2000, LivePath=long_recording, FileName="after-cancel")
    assert poll_export(web, short)[1]["ErrorCode"] == 5  # the worker takes the next job
