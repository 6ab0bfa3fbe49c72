"""Issue 13's holes, tried as an attacker with an ordinary account would, over real HTTP against
the Procfile's web and worker: each is refused with the documented code, and the victim's
objects stay byte-for-byte as they were (bytes and S3 version lists compared)."""

from __future__ import annotations

import io
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from scripts import devstack
from scripts.samples import SampleSpec, generate_recording
from tests.helpers import export_body, storage_info, upload_recording
from tests.integration.conftest import poll_export

pytestmark = pytest.mark.integration

PDT_MS = 1_700_000_000_000
LIVE = "live/tenancy"
VERSIONED = "vexports"


def _db(url: str, number: int) -> str:
    return re.sub(r"/\d+$", f"/{number}", url)


@pytest.fixture(scope="module")
def tenancy_env(service_env: dict[str, str], s3: Any) -> dict[str, str]:
    """The shared stack's settings on a Redis database of its own, with a versioned bucket."""
    s3.create_bucket(Bucket=VERSIONED)
    s3.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})
    return {
        **service_env,
        "RESOURCED_REDIS_URL": _db(service_env["RESOURCED_REDIS_URL"], 1),
        "RESOURCED_ALLOWED_BUCKETS": f"archive,exports,images,{VERSIONED}",
    }


@pytest.fixture(scope="module")
def stack(tenancy_env: dict[str, str], logs_dir: Path, s3: Any) -> Iterator[str]:
    """Web and one worker from the Procfile."""
    with devstack.service(tenancy_env, logs_dir, tag="tenancy") as url:
        yield url


@pytest.fixture(scope="module")
def web_only(service_env: dict[str, str], logs_dir: Path, s3: Any) -> Iterator[str]:
    """The Procfile's web alone, small per-user limits: restore jobs stay 'restoring'."""
    env = {
        **service_env,
        "RESOURCED_REDIS_URL": _db(service_env["RESOURCED_REDIS_URL"], 2),
        "RESOURCED_RESTORE_MAX_ACTIVE_PER_USER": "2",
        "RESOURCED_RESTORE_MAX_FILES_PER_JOB": "5",
        "RESOURCED_TEST_CALLBACK_PER_MINUTE": "2",
    }
    with devstack.service(env, logs_dir, tag="tenancy-web", workers=0) as url:
        yield url


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> str:
    rec = generate_recording(tmp_path_factory.mktemp("tenancy-rec"), SampleSpec(seconds=6))
    upload_recording(s3, "archive", LIVE, rec)
    return LIVE


def issue(env: dict[str, str], user: str, *extra: str) -> str:
    """`resourced session issue`, as an operator runs it."""
    out = subprocess.run(
        [str(devstack.BIN / "resourced"), "session", "issue", "--user", user, *extra],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def sessions(tenancy_env: dict[str, str]) -> dict[str, str]:
    return {user: issue(tenancy_env, user) for user in ("alice", "mallory", "bob")}


def snapshot(s3: Any, bucket: str, key: str) -> tuple[bytes, list[tuple[str, str]], dict[str, str]]:
    """The object's bytes, every version (id, ETag) and its metadata: what must not change."""
    body = s3.get_object(Bucket=bucket, Key=key)
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    versions = [(v["VersionId"], v["ETag"]) for v in listing.get("Versions", []) if v["Key"] == key]
    return body["Body"].read(), versions, body["Metadata"]


def jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(out, format="JPEG")
    return out.getvalue()


def upload(web: str, session: str, path: str, filename: str, data: bytes) -> dict[str, Any]:
    response = requests.post(
        f"{web}/api/imgbed/v1/upload",
        headers={"X-Session-Id": session},
        files={"file": (filename, data)},
        data={"path": path, "filename": filename},
        timeout=10,
    )
    return {"status": response.status_code, **response.json()}


def delete(web: str, session: str, path: str, filename: str) -> dict[str, Any]:
    response = requests.post(
        f"{web}/api/imgbed/v1/delete",
        json={"path": path, "filename": filename},
        headers={"X-Session-Id": session},
        timeout=10,
    )
    return {"status": response.status_code, **response.json()}


def export_to(session: str, user: str, bucket: str, key: str, **extra: Any) -> dict[str, Any]:
    fields = {"LivePath": LIVE, "ExportS3Bucket": bucket, "ExportS3Key": key, **extra}
    return export_body(session, user, PDT_MS, 2000, **fields)


def test_export_over_another_users_export_is_refused_and_urls_are_pinned(
    stack: str, sessions: dict[str, str], recording: str, s3: Any
) -> None:
    key = "clips/shared/a.mp4"
    status, alice = poll_export(stack, export_to(sessions["alice"], "alice", VERSIONED, key))
    assert (status, alice["ErrorCode"]) == (200, 5), alice
    assert f"versionId={alice['Version']}" in alice["VideoPath"]
    video_before = snapshot(s3, VERSIONED, key)
    image_before = snapshot(s3, VERSIONED, "clips/shared/a.jpg")
    assert {k: video_before[2].get(k) for k in ("owner", "writer")} == {"owner": "alice", "writer": "alice"}
    assert f"versionId={image_before[1][0][0]}" in alice["ImagePath"]

    refused = requests.post(
        f"{stack}/resource/v1/i/export-to-s3dir",
        json=export_to(sessions["mallory"], "mallory", VERSIONED, key, StartTime="1000"),
        timeout=10,
    )
    assert refused.status_code == 403 and refused.json()["ErrorCode"] == 3, refused.text
    assert snapshot(s3, VERSIONED, key) == video_before
    assert snapshot(s3, VERSIONED, "clips/shared/a.jpg") == image_before
    assert s3.list_multipart_uploads(Bucket=VERSIONED).get("Uploads", []) == []

    # Alice may replace her own export; the URL she was given still serves the first one.
    status, again = poll_export(
        stack, export_to(sessions["alice"], "alice", VERSIONED, key, StartTime="3000")
    )
    assert (status, again["ErrorCode"]) == (200, 5) and again["Version"] != alice["Version"]
    assert requests.get(alice["VideoPath"], timeout=10).content == video_before[0]
    assert requests.get(again["VideoPath"], timeout=10).content != video_before[0]


def test_export_poster_cannot_take_over_an_image(stack: str, sessions: dict[str, str], s3: Any) -> None:
    assert upload(stack, sessions["alice"], "avatars/alice", "me.jpg", jpeg(200))["errCode"] == 0
    before = snapshot(s3, "images", "avatars/alice/me.jpg")
    refused = requests.post(
        f"{stack}/resource/v1/i/export-to-s3dir",
        json=export_to(sessions["mallory"], "mallory", "images", "avatars/alice/me.mp4"),
        timeout=10,
    )
    assert refused.status_code == 403 and refused.json()["ErrorCode"] == 3
    assert delete(stack, sessions["mallory"], "avatars/alice", "me.jpg")["errCode"] == 3
    assert upload(stack, sessions["mallory"], "avatars/alice", "me.jpg", jpeg(10))["errCode"] == 3
    assert snapshot(s3, "images", "avatars/alice/me.jpg") == before
    assert s3.list_objects_v2(Bucket="images", Prefix="avatars/alice/me.mp4").get("KeyCount") == 0


def test_objects_the_service_did_not_write_are_nobodys(
    stack: str, sessions: dict[str, str], tenancy_env: dict[str, str], s3: Any
) -> None:
    s3.put_object(Bucket="images", Key="legacy/logo.jpg", Body=jpeg(50), ContentType="image/jpeg")
    s3.put_object(Bucket="archive", Key=f"{LIVE}/foreign.mp4", Body=b"another system's file")
    logo, foreign = snapshot(s3, "images", "legacy/logo.jpg"), snapshot(s3, "archive", f"{LIVE}/foreign.mp4")
    service = issue(tenancy_env, "mma-service", "--service")

    assert upload(stack, sessions["alice"], "legacy", "logo.jpg", jpeg(90))["errCode"] == 3
    assert upload(stack, service, "legacy", "logo.jpg", jpeg(90))["errCode"] == 3
    assert delete(stack, sessions["alice"], "legacy", "logo.jpg")["errCode"] == 3
    assert delete(stack, service, "legacy", "logo.jpg")["errCode"] == 3
    into_recording = requests.post(
        f"{stack}/resource/v1/i/export-to-s3dir",
        json=export_to(sessions["alice"], "alice", "archive", f"{LIVE}/foreign.mp4"),
        timeout=10,
    )
    assert into_recording.status_code == 403 and into_recording.json()["ErrorCode"] == 3
    assert snapshot(s3, "images", "legacy/logo.jpg") == logo
    assert snapshot(s3, "archive", f"{LIVE}/foreign.mp4") == foreign


def test_scoped_sessions_reach_only_their_prefixes(
    stack: str, tenancy_env: dict[str, str], recording: str, s3: Any
) -> None:
    scoped = issue(tenancy_env, "carol", "--scope", f"archive/{LIVE}", "--scope", f"{VERSIONED}/carol")
    allowed = export_to(scoped, "carol", VERSIONED, "carol/clip.mp4")
    status, answer = poll_export(stack, allowed)
    assert (status, answer["ErrorCode"]) == (200, 5), answer

    s3.put_object(Bucket="archive", Key="live/tenancy0/index.m3u8", Body=b"#EXTM3U\n")
    outside = [
        export_to(scoped, "carol", VERSIONED, "carol/x.mp4", LivePath="live/tenancy0"),  # prefix, not segment
        export_to(scoped, "carol", VERSIONED, "carolyn/x.mp4"),
        export_to(scoped, "carol", "exports", "carol/x.mp4"),
    ]
    for body in outside:
        response = requests.post(f"{stack}/resource/v1/i/export-to-s3dir", json=body, timeout=10)
        assert response.status_code == 403 and response.json()["ErrorCode"] == 3, body
    assert upload(stack, scoped, "carol", "me.jpg", jpeg(3))["errCode"] == 3  # images is not in scope
    restore = requests.post(
        f"{stack}/resource/v1/i/restore",
        json={
            "storage_info": storage_info("archive"),
            "file_dir": "live/tenancy0",
            "file_list": ["a.ts"],
            "callback_url": "http://127.0.0.1:9/cb",
            "SessionId": scoped,
            "userid": "carol",
        },
        timeout=10,
    )
    assert restore.status_code == 403 and restore.json()["code"] == 3
    assert s3.list_objects_v2(Bucket=VERSIONED, Prefix="carolyn").get("KeyCount") == 0


def restore_body(session: str, user: str, files: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "storage_info": storage_info("archive"),
        "file_dir": "flood",
        "file_list": files,
        "callback_url": "http://127.0.0.1:9/cb",
        "SessionId": session,
        "userid": user,
        **extra,
    }


def test_restore_admission_per_user_and_task_ids_per_user(
    web_only: str, service_env: dict[str, str], s3: Any
) -> None:
    alice, bob = issue(service_env, "alice-r"), issue(service_env, "bob-r")
    s3.put_object(Bucket="archive", Key="flood/a.ts", Body=b"a", StorageClass="GLACIER")
    url = f"{web_only}/resource/v1/i/restore"

    too_many = requests.post(
        url, json=restore_body(alice, "alice-r", [f"f{i}.ts" for i in range(6)]), timeout=10
    )
    assert (
        too_many.status_code == 429
        and too_many.json()["code"] == 7
        and int(too_many.headers["Retry-After"]) >= 1
    )
    for task in ("one", "two"):
        ok = requests.post(url, json=restore_body(alice, "alice-r", ["a.ts"], task_id=task), timeout=10)
        assert ok.json() == {"code": 0, "message": "accepted", "task_id": task}
    third = requests.post(url, json=restore_body(alice, "alice-r", ["a.ts"], task_id="three"), timeout=10)
    assert third.status_code == 429 and third.json()["code"] == 7 and "Retry-After" in third.headers
    assert (
        requests.post(url, json=restore_body(alice, "alice-r", ["a.ts"], task_id="one"), timeout=10).json()[
            "message"
        ]
        == "already accepted"
    )

    # bob picks alice's id: his own job, neither refused nor shown alice's
    mine = requests.post(
        url, json=restore_body(bob, "bob-r", ["b.ts"], task_id="one", file_dir="bobs"), timeout=10
    )
    assert mine.json() == {"code": 0, "message": "accepted", "task_id": "one"}
    seen_by = {
        who: requests.get(f"{url}/one", headers={"X-Session-Id": s}, timeout=10).json()
        for who, s in (("alice", alice), ("bob", bob))
    }
    assert seen_by["alice"]["file_dir"] == "flood" and seen_by["bob"]["file_dir"] == "bobs"
    gone = requests.get(f"{url}/three", headers={"X-Session-Id": alice}, timeout=10)
    assert gone.status_code == 404


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
