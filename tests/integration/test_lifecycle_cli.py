"""The SDK and the `resourced` CLI for section 6 against the running service: spans (every
page joined), a snapshot, and an export with --callback-url, each with --json."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from app.client import Client, storage_info_b64
from scripts.samples import SampleSpec, generate_recording
from tests.helpers import upload_recording
from tests.integration.conftest import run_cli
from tests.integration.receiver import receiver

pytestmark = pytest.mark.integration

PDT_MS = 1_700_000_000_000


@pytest.fixture(scope="module")
def cli_rec(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    rec = generate_recording(tmp_path_factory.mktemp("cli6"), SampleSpec(seconds=4, audio_codec=None))
    upload_recording(s3, "archive", "live/cli6", rec)
    return "live/cli6"


def test_sdk_spans_joins_every_page(
    web: str, worker: subprocess.Popen, session_id: str, cli_rec: str
) -> None:
    client = Client(web, session_id, "alice")
    whole = client.all_spans(live_path=cli_rec, storage_info=storage_info_b64("archive"))
    assert whole.spans == [(PDT_MS, PDT_MS + 4000)] and whole.gaps == [] and whole.cursor == ""


def test_cli_spans_json(web: str, worker: subprocess.Popen, session_id: str, cli_rec: str) -> None:
    done = run_cli(web, session_id, "spans", "--json", "--live-path", cli_rec, "--bucket", "archive")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Spans"] == [{"Start": PDT_MS, "End": PDT_MS + 4000}]
    text = run_cli(web, session_id, "spans", "--live-path", cli_rec, "--bucket", "archive")
    assert "media 2023-11-14T22:13:20.000Z - 2023-11-14T22:13:24.000Z" in text.stdout
    missing = run_cli(web, session_id, "spans", "--json", "--live-path", "live/none", "--bucket", "archive")
    assert missing.returncode != 0 and json.loads(missing.stdout)["error"] == 4


def test_cli_snapshot_json(
    web: str, worker: subprocess.Popen, session_id: str, cli_rec: str, tmp_path: Path
) -> None:
    target = tmp_path / "still.jpg"
    done = run_cli(
        web, session_id, "snapshot", "--json", "--live-path", cli_rec, "--bucket", "archive",
        "--start", str(PDT_MS), "--start-time", "2200", "--width", "80", "--download", str(target),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["ErrorCode"] == 5 and answer["JobId"] and target.read_bytes()[:2] == b"\xff\xd8"


def test_cli_export_with_a_callback_url(
    web: str, worker: subprocess.Popen, session_id: str, cli_rec: str
) -> None:
    with receiver() as hook:
        done = run_cli(
            web, session_id, "export", "--json", "--live-path", cli_rec, "--bucket", "archive",
            "--start", str(PDT_MS), "--duration", "1000", "--callback-url", hook.url,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        deadline = time.monotonic() + 20
        while not hook.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [b["JobId"] for b in hook.bodies()] == [answer["JobId"]]
