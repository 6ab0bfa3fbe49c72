"""The abuse the web tier must shrug off, over real HTTP against the Procfile's web process: a
trickling callback, floods of test pings, parser-breaking JSON, invisible characters, addresses
that embed internal IPv4, Flower without credentials, and an export's key held while on its way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from scripts import devstack
from tests.helpers import export_body
from tests.integration.tenancy_helpers import LIVE, PDT_MS, issue, jpeg, restore_body, upload

pytestmark = pytest.mark.integration


@pytest.fixture
def trickler() -> Iterator[str]:
    """A callback endpoint that answers one byte every 2 s, for up to a minute."""
    import socket
    import threading
    import time

    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" * 4:
                    if stop.is_set():
                        break
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/cb"
    stop.set()
    thread.join(5)
    server.close()


def test_test_callback_cuts_a_trickling_client_at_its_deadline(
    web_only: str, service_env: dict[str, str], trickler: str
) -> None:
    session = issue(service_env, "trickle-user")
    response = requests.post(
        f"{web_only}/resource/v1/i/restore/test-callback",
        json={"callback_url": trickler, "SessionId": session, "userid": "trickle-user"},
        timeout=15,  # the contract's 10 s, plus slack for a loaded machine; gunicorn would say 500 at 30
    )
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert response.json()["code"] != 0 and "deadline" in response.json()["message"]


def test_test_callback_is_rate_limited_per_user(web_only: str, service_env: dict[str, str]) -> None:
    from tests.integration.receiver import receiver

    dave, erin = issue(service_env, "dave"), issue(service_env, "erin")
    with receiver() as client:
        codes = []
        for _ in range(5):  # limit 2 a minute: even across a window boundary at most 4 get through
            response = requests.post(
                f"{web_only}/resource/v1/i/restore/test-callback",
                json={"callback_url": client.url, "SessionId": dave, "userid": "dave"},
                timeout=15,
            )
            codes.append((response.status_code, response.json()["code"], response.headers.get("Retry-After")))
        limited = [c for c in codes if c[0] == 429]
        assert limited and all(code == 7 and retry and int(retry) >= 1 for _, code, retry in limited), codes
        assert len(client.received) == 5 - len(limited)  # a refused test sends nothing
        other = requests.post(
            f"{web_only}/resource/v1/i/restore/test-callback",
            json={"callback_url": client.url, "SessionId": erin, "userid": "erin"},
            timeout=15,
        )
        assert other.json()["code"] == 0


def test_small_holes(web_only: str, service_env: dict[str, str], s3: Any) -> None:
    session = issue(service_env, "frank")
    nested = b"[" * 20_000 + b"]" * 20_000
    for path, field in (
        ("/resource/v1/i/export-to-s3dir", "ErrorCode"),
        ("/resource/v1/i/restore", "code"),
        ("/resource/v1/i/restore/test-callback", "code"),
        ("/api/imgbed/v1/delete", "errCode"),
    ):
        response = requests.post(
            web_only + path,
            data=nested,
            headers={"Content-Type": "application/json", "X-Session-Id": session},
            timeout=10,
        )
        assert (response.status_code, response.json()[field]) == (400, 2), (path, response.text)
        chunked = requests.post(  # a generator body is sent chunked: no Content-Length to refuse
            web_only + path,
            data=(b"[" + b" " * 65_536 for _ in range(64)),
            headers={"Content-Type": "application/json", "X-Session-Id": session},
            timeout=10,
        )
        assert (chunked.status_code, chunked.json()[field]) == (413, 2), (path, chunked.text)

    rtl = upload(web_only, session, "frank", "x\u202egnp.exe", jpeg(1))
    assert (rtl["status"], rtl["errCode"]) == (400, 2)
    hidden = upload(web_only, session, "fr\u200bank", "a.jpg", jpeg(1))
    assert (hidden["status"], hidden["errCode"]) == (400, 2)
    assert s3.list_objects_v2(Bucket="images", Prefix="fr").get("KeyCount") == 0

    for embedded in (
        "http://[2002:a00:1::]/cb",
        "http://[64:ff9b::a9fe:a9fe]/cb",
        "http://[::ffff:127.0.0.2]/cb",
    ):
        created = requests.post(
            f"{web_only}/resource/v1/i/restore",
            json=restore_body(session, "frank", ["a.ts"], callback_url=embedded),
            timeout=10,
        )
        assert created.json()["code"] == 2 and "internal" in created.json()["message"], embedded
        tested = requests.post(
            f"{web_only}/resource/v1/i/restore/test-callback",
            json={"callback_url": embedded, "SessionId": session, "userid": "frank"},
            timeout=10,
        )
        assert tested.json()["code"] == 2, embedded


def test_flower_refuses_to_serve_without_credentials(
    service_env: dict[str, str], logs_dir: Path, redis_url: str
) -> None:
    env = {**service_env, "FLOWER_PORT": str(devstack.free_port())}
    without = devstack.start_procfile(
        "flower", {**env, "FLOWER_BASIC_AUTH": ""}, logs_dir / "flower-none.log"
    )
    try:
        assert without.wait(30) != 0
    finally:
        devstack.stop(without)
    said = (logs_dir / "flower-none.log").read_text().strip().splitlines()
    assert (
        len(said) == 1 and said[0].startswith("flower: refusing to start:") and "FLOWER_BASIC_AUTH" in said[0]
    )

    port = devstack.free_port()
    with_auth = devstack.start_procfile(
        "flower",
        {**env, "FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": "ops:s3cret"},
        logs_dir / "flower.log",
    )
    try:
        devstack.wait_for(lambda: devstack.port_open(port), "flower", timeout_s=60, proc=with_auth)
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 401
        assert requests.get(f"http://127.0.0.1:{port}/", auth=("ops", "wrong"), timeout=10).status_code == 401
        assert requests.get(f"http://127.0.0.1:{port}/workers", auth=("ops", "s3cret"), timeout=10).ok
    finally:
        devstack.stop(with_auth)


def test_an_export_on_its_way_holds_its_key(web_only: str, service_env: dict[str, str], s3: Any) -> None:
    """No worker runs here, so alice's export stays queued with nothing in S3 yet; mallory's
    export to the same key must not be admitted (its worker would abort alice's upload)."""
    alice, mallory = issue(service_env, "alice-q"), issue(service_env, "mallory-q")
    target = {"ExportS3Bucket": "exports", "ExportS3Key": "queued/a.mp4", "LivePath": LIVE}
    url = f"{web_only}/resource/v1/i/export-to-s3dir"
    first = requests.post(url, json=export_body(alice, "alice-q", PDT_MS, 2000, **target), timeout=10)
    assert first.json()["ErrorCode"] == 1, first.text
    second = requests.post(url, json=export_body(mallory, "mallory-q", PDT_MS, 2000, **target), timeout=10)
    assert second.status_code == 403 and second.json()["ErrorCode"] == 3
    assert s3.list_objects_v2(Bucket="exports", Prefix="queued/").get("KeyCount") == 0
