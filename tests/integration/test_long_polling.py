"""Long polling as clients meet it, against the Procfile's web: the Python client gets a short
export's clip from its first request, held until the job ends; the CLI prints the job's
progress while it waits and the clip when it is ready."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from app.client import Client, ExportResult, storage_info_b64
from scripts import devstack
from tasks.exports.store import ExportJobStore
from tests.factories import current_token
from tests.integration.conftest import finish_job, held_polls

pytestmark = pytest.mark.integration
PDT_MS = 1_700_000_000_000
CLI = str(Path(sys.executable).parent / "resourced")


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.posts = 0

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.posts += 1
        return super().post(*args, **kwargs)


def new_job(jobs: ExportJobStore) -> str:
    found: list[str] = []
    devstack.wait_for(lambda: found.extend(jobs.active_ids()) or found, "the job", 20)
    return found[0]


def test_the_client_gets_a_short_export_from_its_first_request(
    quiet_web: tuple[str, redis.Redis], session_id: str
) -> None:
    base, client = quiet_web
    jobs = ExportJobStore(client)
    client.flushdb()
    http = CountingSession()
    sdk = Client(base, session_id, "alice", http=http)
    results: list[ExportResult] = []
    thread = threading.Thread(
        target=lambda: results.append(
            sdk.export(
                live_path="live/held-client",
                start_pos=PDT_MS,
                duration=2000,
                storage_info=storage_info_b64("archive", "exports"),
                timeout_s=60,
            )
        ),
        daemon=True,
    )
    thread.start()
    job_id = new_job(jobs)
    devstack.wait_for(lambda: held_polls(base) == 1, "the held poll", 20)
    finish_job(jobs, job_id)
    thread.join(30)
    assert results and results[0].lack_ms == 0 and results[0].video_url.startswith("http")
    assert http.posts == 1  # submitted, held, answered 5: no second poll


def test_the_cli_prints_progress_while_it_waits(
    quiet_web: tuple[str, redis.Redis], session_id: str, tmp_path: Path
) -> None:
    base, client = quiet_web
    jobs = ExportJobStore(client)
    client.flushdb()
    env = {
        "RESOURCED_URL": base,
        "RESOURCED_SESSION": session_id,
        "RESOURCED_USER": "alice",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(devstack.ROOT),  # this checkout's code, whichever tree installed the script
    }
    args = ["export", "--live-path", "live/held-cli", "--start", str(PDT_MS), "--duration", "2000"]
    args += ["--bucket", "archive", "--dest-bucket", "exports", "--hold", "1"]
    proc = subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        devstack.wait_for(lambda: jobs.active_ids() or proc.poll() is not None, "the job", 20)
        assert proc.poll() is None, lines
        job_id = new_job(jobs)
        jobs.claim(job_id, current_token(jobs, job_id), "test-worker")
        jobs.progress(job_id, current_token(jobs, job_id), 0.4, "remuxing")
        devstack.wait_for(lambda: any("running: remuxing 40%" in line for line in lines), "progress line", 30)
        finish_job(jobs, job_id)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            devstack.stop(proc)
    reader.join(5)
    assert proc.returncode == 0, lines
    assert out.startswith("ready: http"), out
