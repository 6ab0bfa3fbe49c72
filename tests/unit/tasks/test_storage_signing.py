"""Presigned URLs never outlive the credentials that signed them; Intelligent-Tiering's archive
tiers count as archived."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import botocore.session
import pytest
from botocore.credentials import CredentialProvider, RefreshableCredentials
from botocore.stub import Stubber

from tasks.platform.settings import Settings
from tasks.storage import ObjectStore, signing

DAY = 86_400


class ExpiringProvider(CredentialProvider):
    """What an instance role or IRSA gives: credentials that expire `ttl_s` after each refresh."""

    METHOD = "test-expiring"

    def __init__(self, ttl_s: int) -> None:
        self.ttl_s = ttl_s
        self.refreshes = 0

    def _fetch(self) -> dict[str, str]:
        self.refreshes += 1
        expiry = datetime.now(UTC) + timedelta(seconds=self.ttl_s)
        return {
            "access_key": "AKIDEXAMPLE",
            "secret_key": "secret",
            "token": "tok",
            "expiry_time": expiry.isoformat(),
        }

    def load(self) -> RefreshableCredentials:
        return RefreshableCredentials.create_from_metadata(self._fetch(), self._fetch, self.METHOD)


@pytest.fixture
def expiring(monkeypatch: pytest.MonkeyPatch) -> ExpiringProvider:
    provider = ExpiringProvider(ttl_s=20 * 60)
    real_session = boto3.session.Session

    def session() -> boto3.session.Session:
        core = botocore.session.get_session()
        core.get_component("credential_provider").insert_before("env", provider)
        return real_session(botocore_session=core)

    monkeypatch.setattr(boto3.session, "Session", session)
    return provider


def expires_param(url: str) -> int:
    return int(parse_qs(urlparse(url).query)["X-Amz-Expires"][0])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting(store: ObjectStore) -> list[int]:
    client = store.client()
    calls: list[int] = []
    original = client.generate_presigned_url

    def wrapped(*args: Any, **kwargs: Any) -> str:
        calls.append(1)
        return str(original(*args, **kwargs))

    client.generate_presigned_url = wrapped
    return calls


def test_a_url_lives_no_longer_than_its_expiring_credentials(
    expiring: ExpiringProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(signing.time, "monotonic", clock)
    store = ObjectStore(Settings(presign_ttl_s=DAY))
    calls = counting(store)
    url = store.url("exports", "a/clip.mp4")
    assert 19 * 60 <= expires_param(url) <= 20 * 60  # not the configured day
    assert store.url("exports", "a/clip.mp4") == url and len(calls) == 1  # reused meanwhile
    clock.now += 10 * 60 + 1  # half its lifetime: a fresh one, never one past the credentials
    store.url("exports", "a/clip.mp4")
    assert len(calls) == 2


def test_static_credentials_sign_for_the_configured_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = ObjectStore(Settings(presign_ttl_s=DAY))
    assert store.credentials_left_s() is None
    assert expires_param(store.url("exports", "a/clip.mp4")) == DAY


HEAD = {"ContentLength": 10, "ETag": '"e"', "ContentType": "video/mp2t", "Metadata": {}}


@pytest.mark.parametrize(
    ("fields", "archived"),
    [
        ({"StorageClass": "INTELLIGENT_TIERING", "ArchiveStatus": "ARCHIVE_ACCESS"}, True),
        ({"StorageClass": "INTELLIGENT_TIERING", "ArchiveStatus": "DEEP_ARCHIVE_ACCESS"}, True),
        ({"StorageClass": "INTELLIGENT_TIERING"}, False),  # frequent/infrequent tiers read at once
        (
            {
                "StorageClass": "INTELLIGENT_TIERING",
                "ArchiveStatus": "ARCHIVE_ACCESS",
                "Restore": 'ongoing-request="false", expiry-date="Fri, 21 Dec 2030 00:00:00 GMT"',
            },
            False,
        ),
        ({"StorageClass": "DEEP_ARCHIVE"}, True),
    ],
)
def test_intelligent_tiering_archive_tiers_count_as_archived(
    fields: dict[str, str], archived: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = ObjectStore(Settings())
    with Stubber(store.client()) as stub:
        stub.add_response("head_object", {**HEAD, **fields}, {"Bucket": "archive", "Key": "seg.ts"})
        assert store.head("archive", "seg.ts").archived is archived


def test_an_intelligent_tiering_restore_names_no_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = ObjectStore(Settings())
    archived = {**HEAD, "StorageClass": "INTELLIGENT_TIERING", "ArchiveStatus": "DEEP_ARCHIVE_ACCESS"}
    with Stubber(store.client()) as stub:
        stub.add_response("head_object", archived, {"Bucket": "archive", "Key": "seg.ts"})
        stub.add_response(
            "restore_object",
            {},
            {
                "Bucket": "archive",
                "Key": "seg.ts",
                "RestoreRequest": {"GlacierJobParameters": {"Tier": "Bulk"}},
            },
        )
        store.restore("archive", "seg.ts", 3, "Bulk")
        stub.assert_no_pending_responses()
