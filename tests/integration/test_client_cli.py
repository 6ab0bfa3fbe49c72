"""The `resourced` CLI and the Python client against the running service, as a user runs them."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.client import BadRequest, Client, NoMedia, storage_info_b64, verify_restore_callback
from scripts.samples import SampleSpec, generate_recording
from tests.helpers import upload_recording
from tests.integration.conftest import run_cli
from tests.integration.receiver import receiver
from tests.media import frame_indices

pytestmark = pytest.mark.integration
PDT_MS = 1_700_000_000_000


@pytest.fixture(scope="module")
def cli_recording(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    upload_recording(
        s3, "archive", "live/cli", generate_recording(tmp_path_factory.mktemp("cli"), SampleSpec())
    )
    return "live/cli"


def test_cli_exports_and_downloads(
    web: str, worker: subprocess.Popen, session_id: str, cli_recording: str, tmp_path: Path
) -> None:
    out = tmp_path / "cli.mp4"
    done = run_cli(
        web,
        session_id,
        "export",
        "--live-path",
        cli_recording,
        "--start",
        str(PDT_MS),
        "--start-time",
        "1000",
        "--duration",
        "2000",
        "--bucket",
        "archive",
        "--dest-bucket",
        "exports",
        "--type",
        "1",
        "--download",
        str(out),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["ErrorCode"] == 5 and answer["Downloaded"] == str(out)
    assert frame_indices(out) == list(range(25, 75))


def test_cli_errors_are_one_line(web: str, session_id: str, cli_recording: str) -> None:
    bad = run_cli(
        web,
        session_id,
        "export",
        "--live-path",
        cli_recording,
        "--start",
        str(PDT_MS),
        "--duration",
        "-5",
        "--bucket",
        "archive",
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "error 2" in bad.stderr and "Duration" in bad.stderr
    no_session = run_cli(web, "", "imgbed", "delete", "--filename", "x.png")
    assert no_session.returncode == 1 and "error 3" in no_session.stderr


def test_client_typed_errors_image_bed_and_callback_verification(
    web: str,
    worker: subprocess.Popen,
    session_id: str,
    cli_recording: str,
    service_env: dict[str, str],
    s3: Any,
) -> None:
    client = Client(web, session_id, "alice")
    info = storage_info_b64("archive", "exports")
    with pytest.raises(NoMedia):
        client.export(live_path=cli_recording, start_pos=PDT_MS + 10**7, duration=1000, storage_info=info)
    with pytest.raises(BadRequest):
        client.export(live_path="../x", start_pos=PDT_MS, duration=1000, storage_info=info)
    picture = io.BytesIO()
    Image.new("RGB", (4, 4)).save(picture, format="PNG")
    uploaded = client.upload_image(picture.getvalue(), "cli", "dot.png")
    assert uploaded["errCode"] == 0 and client.delete_image("cli", "dot.png")["errCode"] == 0
    s3.put_object(Bucket="archive", Key="cold/cli.ts", Body=b"x")
    with receiver() as hook:
        task_id = client.restore(storage_info_b64("archive"), "cold", ["cli.ts"], hook.url)
        for _ in range(200):
            if hook.received:
                break
            time.sleep(0.1)
        headers, body = hook.received[0]
        payload = verify_restore_callback(service_env["RESOURCED_CALLBACK_SECRET"], body, headers)
        assert payload["task_id"] == task_id and payload["file_list_status"] == [
            {"file_name": "cli.ts", "file_code": 0}
        ]
        with pytest.raises(Exception, match=r"(?i)signature"):
            verify_restore_callback(
                service_env["RESOURCED_CALLBACK_SECRET"], body.replace(b"cli", b"cla"), headers
            )
