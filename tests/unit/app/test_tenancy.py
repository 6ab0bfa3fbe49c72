"""Scoped sessions, per-user restore admission and task ids, and JSON that breaks the parser,
through the Flask app over fakeredis and moto's in-process S3."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import fakeredis
import pytest
from flask.testing import FlaskClient

from app import cli
from app.api.export import _default_dir
from app.auth import BadScope, RedisSessions, Session, SignedSessions, parse_scope
from tasks.exports.spec import S3Location
from tasks.platform import keys
from tasks.platform.settings import ConfigError, Settings
from tests.helpers import export_body, storage_info
from tests.unit.app.conftest import SentTasks

EXPORT = "/resource/v1/i/export-to-s3dir"
RESTORE = "/resource/v1/i/restore"


def test_scopes_match_whole_segments() -> None:
    scoped = Session("carol", scopes=(parse_scope("archive/live/cam1"), parse_scope("exports")))
    assert scoped.allows("archive", "live/cam1") and scoped.allows("archive", "live/cam1/a.ts")
    assert not scoped.allows("archive", "live/cam10") and not scoped.allows("archive", "live/cam10/a.ts")
    assert not scoped.allows("archive", "live") and not scoped.allows("other", "live/cam1/a.ts")
    assert scoped.allows("exports", "anything/at/all.mp4")  # a bare bucket scope is the whole bucket
    assert Session("dave").allows("any-bucket", "any/key")  # unscoped: only the allowlist limits it
    for bad in ("Bad_Bucket/x", "archive/../x", "archive/a\u202eb", "/x"):
        with pytest.raises(BadScope):
            parse_scope(bad)


def test_both_backends_carry_scopes() -> None:
    signed = SignedSessions("scope-test-secret-0123456789")
    resolved = signed.resolve(signed.issue("carol", 60, scopes=("archive/live/cam1/",)))
    assert resolved is not None and resolved.scopes == ("archive/live/cam1",)
    client = fakeredis.FakeRedis()
    client.set(keys.session("s1"), json.dumps({"userid": "carol", "scopes": ["archive/live/cam1"]}))
    client.set(keys.session("s2"), json.dumps({"userid": "carol", "scopes": "archive"}))  # not a list
    client.set(keys.session("s3"), json.dumps({"userid": "carol", "scopes": ["bad/../x"]}))
    sessions = RedisSessions(client)
    assert sessions.resolve("s1").scopes == ("archive/live/cam1",)  # type: ignore[union-attr]
    assert sessions.resolve("s2") is None and sessions.resolve("s3") is None  # never widened to unscoped
    issued = sessions.resolve(sessions.issue("erin", 60, scopes=("exports/erin",)))
    assert issued is not None and issued.scopes == ("exports/erin",)


def test_cli_issues_scoped_sessions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RESOURCED_SECRET_KEY", "cli-test-secret-0123456789")
    monkeypatch.delenv("RESOURCED_SESSION_BACKEND", raising=False)
    assert (
        cli.main(["session", "issue", "--user", "carol", "--scope", "archive/a", "--scope", "exports/b"]) == 0
    )
    token = capsys.readouterr().out.strip()
    resolved = SignedSessions("cli-test-secret-0123456789").resolve(token)
    assert resolved is not None and resolved.scopes == ("archive/a", "exports/b")
    assert cli.main(["session", "issue", "--user", "carol", "--scope", "archive/../etc"]) == 2


def scoped_session(settings: Settings, *scopes: str) -> str:
    return SignedSessions(settings.secret_key).issue("carol", 3600, scopes=scopes)


def test_scoped_export_is_refused_before_any_job(
    client: FlaskClient, settings: Settings, sent: SentTasks
) -> None:
    session = scoped_session(settings, "archive/live/cam1", "exports/carol")
    inside = export_body(session, "carol", 1000, 1000, ExportS3Bucket="exports", ExportS3Key="carol/x.mp4")
    assert client.post(EXPORT, json=inside).get_json()["ErrorCode"] == 1
    for outside in (
        {**inside, "LivePath": "live/cam10"},
        {**inside, "ExportS3Key": "carolyn/x.mp4"},
        {**inside, "ExportS3Key": "", "ExportS3Bucket": ""},  # the default folder, exports/carol/<hash>
    ):
        response = client.post(EXPORT, json=outside)
        assert (response.status_code, response.get_json()["ErrorCode"]) == (403, 3), outside
    assert len(sent.sent) == 1


def restore_body(session: str, user: str = "alice", files: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "storage_info": storage_info("archive"),
        "file_dir": "cold",
        "file_list": [f"f{i}.ts" for i in range(files)],
        "callback_url": "http://8.8.8.8/cb",
        "SessionId": session,
        "userid": user,
        **extra,
    }


@pytest.fixture
def limited(settings: Settings) -> Settings:
    return settings.replace(restore_max_active_per_user=2, restore_max_files_per_job=3)


def test_restore_limits_per_user(
    limited: Settings,
    s3: Any,
    sent: SentTasks,
    redis_client: fakeredis.FakeRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app import create_app
    from tasks.restore.store import RestoreJobStore
    from tasks.storage import ObjectStore

    monkeypatch.setattr(
        "tasks.platform.webhooks.socket.getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("8.8.8.8", 80))]
    )
    client = create_app(
        limited, redis_client=redis_client, celery=sent, store=ObjectStore(limited)
    ).test_client()  # type: ignore[arg-type]
    alice = SignedSessions(limited.secret_key).issue("alice", 3600)
    bob = SignedSessions(limited.secret_key).issue("bob", 3600)

    over = client.post(RESTORE, json=restore_body(alice, files=4))
    assert (over.status_code, over.get_json()["code"]) == (429, 7) and over.headers["Retry-After"]
    for task in ("t1", "t2"):
        assert client.post(RESTORE, json=restore_body(alice, task_id=task)).get_json()["code"] == 0
    busy = client.post(RESTORE, json=restore_body(alice, task_id="t3"))
    assert (busy.status_code, busy.get_json()["code"]) == (429, 7) and busy.headers["Retry-After"]
    assert (
        client.post(RESTORE, json=restore_body(bob, "bob", task_id="t1")).get_json()["message"] == "accepted"
    )
    assert [s["args"] for s in sent.sent] == [["alice:t1"], ["alice:t2"], ["bob:t1"]]

    store = RestoreJobStore(redis_client)
    finished = store.get("alice:t1")
    assert finished is not None
    finished.state = "delivered"
    store.save(finished)  # a finished job frees its slot
    assert client.post(RESTORE, json=restore_body(alice, task_id="t3")).get_json()["code"] == 0
    seen = client.get(f"{RESTORE}/t1", headers={"X-Session-Id": bob}).get_json()
    assert seen["state"] == "restoring" and seen["file_list_status"][0]["file_name"] == "f0.ts"
    assert client.get(f"{RESTORE}/t3", headers={"X-Session-Id": bob}).status_code == 404


def test_a_legacy_record_is_still_found_by_its_worker(redis_client: fakeredis.FakeRedis) -> None:
    from tasks.restore.store import RestoreFile, RestoreJob, RestoreJobStore

    job = RestoreJob("old", "alice", "archive", "us-east-1", "d", "", 1, "Bulk", [RestoreFile("a", "d/a")])
    redis_client.set(keys.restore_job("old"), job.to_json())
    store = RestoreJobStore(redis_client)
    found = store.get("old")
    assert found is not None and found.ref == "old"
    found.state = "settled"
    store.save(found)
    assert json.loads(redis_client.get(keys.restore_job("old")) or b"{}")["state"] == "settled"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (EXPORT, "ErrorCode"),
        (RESTORE, "code"),
        (f"{RESTORE}/test-callback", "code"),
        ("/api/imgbed/v1/delete", "errCode"),
    ],
)
def test_json_that_breaks_the_parser_is_a_bad_request(
    client: FlaskClient, session: str, path: str, field: str
) -> None:
    for body in (b"[" * 20_000 + b"]" * 20_000, b'{"a":' * 12_000, b"\xff\xfe"):
        response = client.post(
            path, data=body, content_type="application/json", headers={"X-Session-Id": session}
        )
        assert (response.status_code, response.get_json()[field]) == (400, 2), (path, body[:10])


def test_an_export_still_on_its_way_holds_its_keys(
    client: FlaskClient, settings: Settings, sent: SentTasks, s3: Any
) -> None:
    """Nothing is in S3 yet, but alice's export is admitted: mallory's to the same key would
    abort alice's multipart upload, so it is refused; alice may queue another one there."""
    issue = SignedSessions(settings.secret_key).issue
    alice, mallory = issue("alice", 3600), issue("mallory", 3600)
    target = {"ExportS3Bucket": "exports", "ExportS3Key": "pending/a.mp4"}
    assert (
        client.post(EXPORT, json=export_body(alice, "alice", 1000, 1000, **target)).get_json()["ErrorCode"]
        == 1
    )
    refused = client.post(EXPORT, json=export_body(mallory, "mallory", 1000, 1000, **target))
    assert (refused.status_code, refused.get_json()["ErrorCode"]) == (403, 3)
    again = client.post(EXPORT, json=export_body(alice, "alice", 5000, 1000, **target))
    assert again.get_json()["ErrorCode"] == 1
    assert len(sent.sent) == 2 and s3.list_objects_v2(Bucket="exports").get("KeyCount") == 0


def test_a_request_that_is_not_admitted_holds_no_key(
    client: FlaskClient, settings: Settings, redis_client: fakeredis.FakeRedis
) -> None:
    """Mallory, at her limit, is told 429 for an export to a name beside Alice's images: the
    name stays free for Alice (no claim is left behind)."""
    issue = SignedSessions(settings.secret_key).issue
    alice, mallory = issue("alice", 3600), issue("mallory", 3600)
    for i in range(settings.max_active_exports_per_user):
        assert client.post(EXPORT, json=export_body(mallory, "mallory", 1000 + i, 1000)).status_code == 200
    squat = {"ExportS3Bucket": "exports", "ExportS3Key": "alice/new.mp4"}
    busy = client.post(EXPORT, json=export_body(mallory, "mallory", 9000, 1000, **squat))
    assert (busy.status_code, busy.get_json()["ErrorCode"]) == (429, 7)
    assert redis_client.keys(keys.destination_claim("exports", "alice/new.mp4")) == []
    mine = client.post(EXPORT, json=export_body(alice, "alice", 9000, 1000, **squat))
    assert mine.get_json()["ErrorCode"] == 1


def test_the_default_folder_depends_on_the_service_secret(
    client: FlaskClient, settings: Settings, sent: SentTasks, redis_client: fakeredis.FakeRedis
) -> None:
    """No other user can compute where Alice's export without ExportS3Key will be written."""
    alice = SignedSessions(settings.secret_key).issue("alice", 3600)
    client.post(EXPORT, json=export_body(alice, "alice", 1000, 1000))
    (claim,) = [k.decode() for k in redis_client.keys(keys.destination_claim("exports", "*.mp4"))]
    folder = claim.split("exports/", 1)[1].rsplit("/", 1)[0]
    assert folder.startswith("exports/alice/")
    seed = json.dumps(["alice", "archive", "", "live/cam1", 1000, 1000, 0])
    assert folder.rsplit("/", 1)[1] != hashlib.sha256(seed.encode()).hexdigest()[:20]
    request = {"Duration": 1000, "export_type": 0}
    archive = S3Location("archive", "us-east-1")
    folders = {
        _default_dir("alice", archive, "live/cam1", 1000, request, key) for key in ("k" * 16, "j" * 16)
    }
    assert len(folders) == 2  # another secret, another folder: it cannot be computed without it


def test_the_web_process_needs_its_secret_whatever_the_session_backend() -> None:
    with pytest.raises(ConfigError, match="RESOURCED_SECRET_KEY"):
        Settings(session_backend="redis", secret_key="").check_web()
