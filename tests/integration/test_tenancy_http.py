"""Issue 13's holes, tried as an attacker with an ordinary account would, over real HTTP against
the Procfile's web and worker: each is refused with the documented code, and the victim's
objects stay byte-for-byte as they were (bytes and S3 version lists compared)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from scripts import devstack
from scripts.samples import SampleSpec, generate_recording
from tests.helpers import storage_info, upload_recording
from tests.integration.conftest import poll_export
from tests.integration.tenancy_helpers import (
    LIVE,
    VERSIONED,
    _db,
    delete,
    export_to,
    issue,
    jpeg,
    restore_body,
    snapshot,
    upload,
)

pytestmark = pytest.mark.integration


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
def recording(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> str:
    rec = generate_recording(tmp_path_factory.mktemp("tenancy-rec"), SampleSpec(seconds=6))
    upload_recording(s3, "archive", LIVE, rec)
    return LIVE


@pytest.fixture(scope="module")
def sessions(tenancy_env: dict[str, str]) -> dict[str, str]:
    return {user: issue(tenancy_env, user) for user in ("alice", "mallory", "bob")}


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
