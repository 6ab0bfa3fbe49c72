"""recording-spans at the HTTP edge: validation names the field (2), auth and scopes (3), and the
answer a spans worker gives, relayed (here the worker's function runs inline on send_task)."""

from __future__ import annotations

import base64
import re
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.auth import SignedSessions
from app.schemas import spans as spans_schema
from tasks.exports.spans_rpc import SpansRequest, send_reply
from tasks.exports.store import ExportJobStore
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.helpers import storage_info
from workers.archive import ranges
from workers.runtime import spans_task
from workers.runtime.clients import Runtime

URL = "/resource/v1/i/recording-spans"
T0 = 1_767_225_600_000


class InlineSpans:
    """A Celery stand-in that answers a spans task at once, as a worker would."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.sent: list[str] = []

    def send_task(self, name: str, args: list[Any], queue: str, **_: Any) -> None:
        self.sent.append(queue)
        request = SpansRequest.from_json(args[0])
        send_reply(self.runtime.redis, request.reply_to, spans_task.answer_spans(request))


@pytest.fixture(autouse=True)
def archive_index_on_fakeredis(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The archive index on a fresh fakeredis per test, never a Redis running on this machine."""
    monkeypatch.setattr(ranges, "_clients", {settings.redis_url: fakeredis.FakeRedis()})


@pytest.fixture
def inline(
    settings: Settings, s3: Any, redis_client: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> InlineSpans:
    runtime = Runtime(settings, redis_client, ObjectStore(settings), ExportJobStore(redis_client))
    monkeypatch.setattr(spans_task, "runtime", lambda: runtime)
    return InlineSpans(runtime)


@pytest.fixture
def app(settings: Settings, s3: Any, inline: InlineSpans, redis_client: fakeredis.FakeRedis) -> Flask:
    return create_app(settings, redis_client=redis_client, celery=inline, store=ObjectStore(settings))  # type: ignore[arg-type]


def body(session: str, **overrides: Any) -> dict[str, Any]:
    return {
        "storage_info": storage_info("archive"),
        "LivePath": "live/cam",
        "SessionId": session,
        "userid": "alice",
        **overrides,
    }


def put_recording(s3: Any) -> None:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z"]
    for i in range(5):
        lines += ["#EXTINF:2.000,", f"s{i}.ts"]
        if i != 2:
            s3.put_object(Bucket="archive", Key=f"live/cam/s{i}.ts", Body=b"x")
    s3.put_object(
        Bucket="archive", Key="live/cam/index.m3u8", Body="\n".join([*lines, "#EXT-X-ENDLIST", ""]).encode()
    )


def test_spans_of_a_recording(client: FlaskClient, session: str, s3: Any, inline: InlineSpans) -> None:
    put_recording(s3)
    response = client.post(URL, json=body(session))
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["ErrorCode"] == 0 and answer["Cursor"] == ""
    assert answer["Spans"] == [{"Start": T0, "End": T0 + 4000}, {"Start": T0 + 6000, "End": T0 + 10_000}]
    assert answer["Gaps"] == [{"Start": T0 + 4000, "End": T0 + 6000}]
    assert answer["Renditions"] == [{"Name": "", "Width": 0, "Height": 0, "Bandwidth": 0, "Codec": ""}]
    assert inline.sent == ["spans"]


def test_nothing_there_is_4(client: FlaskClient, session: str) -> None:
    response = client.post(URL, json=body(session, LivePath="live/none"))
    assert (response.status_code, response.get_json()["ErrorCode"]) == (404, 4)


def test_a_rendition_on_a_plain_recording_is_ignored_as_by_an_export(
    client: FlaskClient, session: str, s3: Any
) -> None:
    put_recording(s3)
    response = client.post(URL, json=body(session, Rendition="4k"))
    assert (response.status_code, response.get_json()["ErrorCode"]) == (200, 0)


def test_a_rendition_a_ladder_lacks_is_a_bad_request(client: FlaskClient, session: str, s3: Any) -> None:
    put_recording(s3)
    master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\nindex.m3u8\n"
    s3.put_object(Bucket="archive", Key="live/cam/master.m3u8", Body=master.encode())
    response = client.post(URL, json=body(session, Rendition="4k"))
    assert (response.status_code, response.get_json()["ErrorCode"]) == (400, 2)
    assert "Rendition" in response.get_json()["ErrorMessage"]
    good = client.post(URL, json=body(session, Rendition="640x360")).get_json()
    assert good["ErrorCode"] == 0 and good["Renditions"][0]["Width"] == 640


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"LivePath": "../etc"}, "LivePath"),
        ({"LivePath": None}, "LivePath"),
        ({"StartPos": "soon"}, "StartPos"),
        ({"StartPos": -1}, "StartPos"),
        ({"Duration": 0}, "Duration"),
        ({"Duration": [1]}, "Duration"),
        ({"Cursor": 7}, "Cursor"),
        ({"Cursor": "not-a-cursor"}, "Cursor"),
        ({"Rendition": "x" * 500}, "Rendition"),
        ({"storage_info": "%%%"}, "storage_info"),
    ],
)
def test_bad_input_names_the_field(
    client: FlaskClient, session: str, s3: Any, overrides: dict[str, Any], field: str
) -> None:
    put_recording(s3)
    response = client.post(URL, json=body(session, **overrides))
    answer = response.get_json()
    assert (response.status_code, answer["ErrorCode"]) == (400, 2), answer
    assert field in answer["ErrorMessage"]


@pytest.mark.parametrize("raw", [b"[]", b"not json", b'{"LivePath": "x"}'])
def test_a_body_that_is_no_request(client: FlaskClient, raw: bytes) -> None:
    response = client.post(URL, data=raw, content_type="application/json")
    assert response.status_code in (400, 401) and response.get_json()["ErrorCode"] in (2, 3)


def test_another_users_session_is_refused(
    client: FlaskClient, settings: Settings, inline: InlineSpans
) -> None:
    bob = SignedSessions(settings.secret_key).issue("bob", 3600)
    response = client.post(URL, json=body(bob))  # userid alice
    assert response.get_json()["ErrorCode"] == 3 and response.status_code in (401, 403)
    assert inline.sent == []


def test_a_bucket_not_allowed_is_refused(client: FlaskClient, session: str, inline: InlineSpans) -> None:
    response = client.post(URL, json=body(session, storage_info=storage_info("forbidden")))
    assert (response.status_code, response.get_json()["ErrorCode"]) == (403, 3)
    assert inline.sent == []


def long_recording(s3: Any, segments: int = 60) -> None:
    """A continuous recording of `segments` two-second segments: more than one page's entries."""
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z"]
    for i in range(segments):
        lines += ["#EXTINF:2.000,", f"s{i}.ts"]
        s3.put_object(Bucket="archive", Key=f"live/cam/s{i}.ts", Body=b"x")
    s3.put_object(
        Bucket="archive", Key="live/cam/index.m3u8", Body="\n".join([*lines, "#EXT-X-ENDLIST", ""]).encode()
    )


def test_a_forged_cursor_is_a_bad_request_naming_cursor(client: FlaskClient, session: str, s3: Any) -> None:
    """A hand-made worker cursor (v1:<pos>:<last>) once answered 0 with an invented gap."""
    long_recording(s3)
    forged = base64.urlsafe_b64encode(f"v1:{T0 + 60_000}:{T0 + 1000}".encode()).decode().rstrip("=")
    for cursor in (forged, f"{forged}.AAAAAAAAAAAAAAAAAAAAAAAA"):
        response = client.post(URL, json=body(session, Cursor=cursor))
        answer = response.get_json()
        assert (response.status_code, answer["ErrorCode"]) == (400, 2), answer
        assert answer["ErrorMessage"].startswith("bad request: Cursor: is not a cursor this service")


def test_a_cursor_is_bound_to_its_request(client: FlaskClient, session: str, s3: Any) -> None:
    long_recording(s3)
    first = client.post(URL, json=body(session, StartPos=T0)).get_json()
    cursor = first["Cursor"]
    assert first["ErrorCode"] == 0 and cursor and re.fullmatch(r"[A-Za-z0-9_.-]+", cursor)
    following = client.post(URL, json=body(session, StartPos=T0, Cursor=cursor)).get_json()
    assert following["ErrorCode"] == 0 and following["Spans"][0]["Start"] >= first["Spans"][-1]["End"]
    for other in (
        {"StartPos": T0 + 1},
        {"StartPos": T0, "Duration": 3_600_000},
        {"StartPos": T0, "Rendition": "hi"},
        {"StartPos": T0, "LivePath": "live/other"},
        {"StartPos": T0, "storage_info": storage_info("exports")},
    ):
        response = client.post(URL, json=body(session, Cursor=cursor, **other))
        assert (response.status_code, response.get_json()["ErrorCode"]) == (400, 2), other
        assert "Cursor" in response.get_json()["ErrorMessage"]


def test_a_bad_cursor_is_named_with_the_other_bad_fields(client: FlaskClient, session: str) -> None:
    response = client.post(URL, json=body(session, Cursor="forged", StartPos=1.5, Duration=0))
    message = response.get_json()["ErrorMessage"]
    assert response.status_code == 400
    assert all(f"{name}:" in message for name in ("Cursor", "Duration", "StartPos")), message


@pytest.mark.parametrize(
    ("field", "value"), [("StartPos", 1.5), ("Duration", "1000.5"), ("StartPos", "2.25")]
)
def test_a_fraction_of_a_ms_is_a_bad_request(
    client: FlaskClient, session: str, field: str, value: Any
) -> None:
    response = client.post(URL, json=body(session, **{field: value}))
    answer = response.get_json()
    assert (response.status_code, answer["ErrorCode"]) == (400, 2)
    assert f"{field}: must be a whole number of milliseconds" in answer["ErrorMessage"]


def test_without_a_secret_key_no_cursor_verifies() -> None:
    """A MAC keyed with "" would be anyone's to forge: a schema given no key refuses every cursor,
    even one sealed with "" the way a forger would."""
    binding = ["archive", "", "live/cam", "", None, None]
    with pytest.raises(ValueError, match="not a cursor this service handed out"):
        spans_schema.open_cursor("", binding, "djE6MTAwOg.AAAAAAAAAAAAAAAAAAAAAAAA")
    with pytest.raises(ValueError, match="not a cursor this service handed out"):
        spans_schema.seal_cursor("", binding, "djE6MTAwOg")


def test_a_cursor_with_characters_a_mac_never_has_is_refused_not_a_500() -> None:
    binding = ["archive", "", "live/cam", "", None, None]
    with pytest.raises(ValueError, match="not a cursor this service handed out"):
        spans_schema.open_cursor("k" * 32, binding, "djE6MTAwOg.\u00e9")
