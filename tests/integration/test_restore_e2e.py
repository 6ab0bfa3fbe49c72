"""Restore jobs through the real web and worker: Glacier objects in moto's S3 server, and a
real local HTTP receiver that verifies the signed PutRestoreResult."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from scripts.samples import SampleSpec, generate_recording
from tests.helpers import export_body, storage_info, upload_recording
from tests.integration.conftest import poll_export
from tests.integration.receiver import receiver
from tests.media import frame_indices

pytestmark = pytest.mark.integration
PDT_MS = 1_700_000_000_000


def restore(web: str, session: str, callback: str, files: list[str], **extra: Any) -> requests.Response:
    body = {
        "storage_info": storage_info("archive"),
        "file_dir": "cold",
        "file_list": files,
        "callback_url": callback,
        "tier": "Bulk",
        "days": 2,
        "SessionId": session,
        "userid": "alice",
        **extra,
    }
    return requests.post(f"{web}/resource/v1/i/restore", json=body, timeout=10)


def wait_state(
    web: str, session: str, task_id: str, states: set[str], timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = requests.get(
            f"{web}/resource/v1/i/restore/{task_id}", headers={"X-Session-Id": session}, timeout=10
        )
        body = job.json()
        if body.get("state") in states or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def test_restore_end_to_end_with_signed_callback(
    web: str, worker: subprocess.Popen, session_id: str, s3: Any, service_env: dict[str, str]
) -> None:
    s3.put_object(Bucket="archive", Key="cold/warm.ts", Body=b"w")
    s3.put_object(Bucket="archive", Key="cold/frozen.ts", Body=b"f", StorageClass="GLACIER")
    s3.put_object(Bucket="archive", Key="cold/deep.ts", Body=b"d", StorageClass="DEEP_ARCHIVE")
    with receiver() as client:
        answer = restore(
            web, session_id, client.url, ["warm.ts", "frozen.ts", "deep.ts", "gone.ts"], task_id="r-1"
        )
        assert answer.json() == {"code": 0, "message": "accepted", "task_id": "r-1"}
        assert (
            restore(web, session_id, client.url, ["warm.ts"], task_id="r-1").json()["code"] == 0
        )  # idempotent
        job = wait_state(web, session_id, "r-1", {"delivered", "delivery_failed"})
        assert job["state"] == "delivered", job
        assert len(client.received) == 1
        headers, raw = client.received[0]
        payload = Webhook(service_env["RESOURCED_CALLBACK_SECRET"]).verify(raw, headers)
        assert payload["type"] == 1 and payload["task_id"] == "r-1" and payload["file_dir"] == "cold"
        codes = {f["file_name"]: f["file_code"] for f in payload["file_list_status"]}
        assert codes == {"warm.ts": 0, "frozen.ts": 0, "deep.ts": 0, "gone.ts": 1}
        assert payload["code"] != 0  # one file was missing
    assert s3.get_object(Bucket="archive", Key="cold/frozen.ts")["Body"].read() == b"f"  # readable now


def test_callback_is_retried_until_acknowledged(
    web: str, worker: subprocess.Popen, session_id: str, s3: Any
) -> None:
    s3.put_object(Bucket="archive", Key="cold/r2.ts", Body=b"x")
    with receiver() as client:
        client.answers = [(500, {"error": "down"}), (200, {"code": 7, "message": "not ready"})]
        assert restore(web, session_id, client.url, ["r2.ts"], task_id="r-2").json()["code"] == 0
        job = wait_state(web, session_id, "r-2", {"delivered", "delivery_failed"})
        assert job["state"] == "delivered"
        attempts = job["callback_attempts"]
        assert [a["ok"] for a in attempts] == [False, False, True]
        assert "HTTP 500" in attempts[0]["error"] and "code 7" in attempts[1]["error"]
        ids = {headers["webhook-id"] for headers, _ in client.received}
        assert len(ids) == 1  # the same message id on every retry, so a client can deduplicate


def test_test_callback_ping(web: str, session_id: str) -> None:
    ping = {"SessionId": session_id, "userid": "alice"}
    with receiver() as client:
        answer = requests.post(
            f"{web}/resource/v1/i/restore/test-callback",
            json={**ping, "callback_url": client.url},
            timeout=15,
        )
        assert answer.json()["code"] == 0
        assert client.bodies()[0]["type"] == 0
        client.answers = [(200, {"code": 3, "message": "nope"})]
        answer = requests.post(
            f"{web}/resource/v1/i/restore/test-callback",
            json={**ping, "callback_url": client.url},
            timeout=15,
        )
        assert answer.json()["code"] != 0 and "code 3" in answer.json()["message"]
    for internal in ("http://10.0.0.1/cb", "http://169.254.169.254/latest", "http://[::1]:1/", "gopher://x/"):
        answer = requests.post(
            f"{web}/resource/v1/i/restore/test-callback", json={**ping, "callback_url": internal}, timeout=15
        )
        assert answer.json()["code"] == 2 and "refused" in answer.json()["message"]


def test_restore_request_validation(web: str, session_id: str) -> None:
    bad = restore(web, session_id, "http://127.0.0.1:9/cb", ["../x.ts"])
    assert (bad.status_code, bad.json()["code"]) == (400, 2)
    bad = restore(web, session_id, "http://10.0.0.1/cb", ["a.ts"])
    assert (bad.status_code, bad.json()["code"]) == (400, 2)
    forbidden = restore(
        web, session_id, "http://127.0.0.1:9/cb", ["a.ts"], storage_info=storage_info("nope-bucket")
    )
    assert (forbidden.status_code, forbidden.json()["code"]) == (403, 3)
    other = requests.get(f"{web}/resource/v1/i/restore/r-1", timeout=10)
    assert (other.status_code, other.json()["code"]) == (401, 3)


def test_export_over_archived_segments_restores_then_exports(
    web: str, worker: subprocess.Popen, session_id: str, s3: Any, tmp_path: Path
) -> None:
    rec = generate_recording(tmp_path / "cold", SampleSpec(seconds=6))
    upload_recording(s3, "archive", "live/cold", rec)
    for segment in rec.segments:  # archive the media, as a lifecycle rule would
        key = f"live/cold/{segment.name}"
        s3.copy_object(
            Bucket="archive", Key=key, CopySource={"Bucket": "archive", "Key": key}, StorageClass="GLACIER"
        )
    body = export_body(
        session_id, "alice", PDT_MS, 3000, StartTime=1000, LivePath="live/cold", FileName="cold"
    )
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = requests.post(f"{web}/resource/v1/i/export-to-s3dir", json=body, timeout=10).json()
        seen.append(answer["ErrorCode"])
        if answer["ErrorCode"] not in (1, 8):
            break
        time.sleep(0.2)
    assert 8 in seen and seen[-1] == 5, (seen, answer)
    _, done = poll_export(web, body)
    video = tmp_path / "cold.mp4"
    video.write_bytes(requests.get(done["VideoPath"], timeout=30).content)
    assert frame_indices(video) == list(range(25, 100))
