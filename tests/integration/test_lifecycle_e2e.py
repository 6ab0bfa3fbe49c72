"""Section 6 through the Procfile's web and worker, real Redis, moto's S3 over HTTP: a
recording's spans and gaps, and an export's end announced to its CallbackUrl (verified with the
standardwebhooks library), retried under one webhook-id."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import pytest
import redis
import requests
from standardwebhooks import Webhook

from app.client import Client
from scripts import devstack
from scripts.samples import SampleSpec, generate_recording, read_frame_index
from tasks.platform import keys
from tests.helpers import export_body, storage_info, upload_recording
from tests.integration.conftest import poll_export
from tests.integration.receiver import Receiver, receiver
from workers.archive.kept_listing import Kept, decode, encode

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PDT_MS = 1_700_000_000_000  # where scripts/samples.py places a generated recording
SPANS = "/resource/v1/i/recording-spans"


def playlist(name: str, count: int, start_iso: str, jump_after: int = -1, jump_to: str = "") -> str:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", f"#EXT-X-PROGRAM-DATE-TIME:{start_iso}"]
    for i in range(count):
        if i == jump_after:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{jump_to}")
        lines += ["#EXTINF:2.000,", f"{name}/s{i:03d}.ts"]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


@pytest.fixture(scope="module")
def holes(s3: Any) -> str:
    """a: 00:00-00:20 with s002 missing; b: 00:30-00:40, a PDT jump, 00:50-00:54."""
    folder = "live/holes"
    texts = {
        "a.m3u8": playlist("a", 10, "2026-01-01T00:00:00Z"),
        "b.m3u8": playlist("b", 7, "2026-01-01T00:00:30Z", jump_after=5, jump_to="2026-01-01T00:00:50Z"),
    }
    for name, text in texts.items():
        s3.put_object(Bucket="archive", Key=f"{folder}/{name}", Body=text.encode())
        for line in text.splitlines():
            if line.endswith(".ts") and line != "a/s002.ts":
                s3.put_object(Bucket="archive", Key=f"{folder}/{line}", Body=b"x")
    return folder


def spans(web: str, session: str, folder: str, **fields: Any) -> tuple[int, dict[str, Any]]:
    body = {
        "storage_info": storage_info("archive"),
        "LivePath": folder,
        "SessionId": session,
        "userid": "alice",
    }
    response = requests.post(web + SPANS, json={**body, **fields}, timeout=20)
    return response.status_code, response.json()


def test_spans_and_gaps_of_a_recording_with_holes(
    web: str, worker: subprocess.Popen, session_id: str, holes: str
) -> None:
    status, page = spans(web, session_id, holes)
    assert (status, page["ErrorCode"], page["Cursor"]) == (200, 0, ""), page
    s = 1000
    assert page["Spans"] == [
        {"Start": T0, "End": T0 + 4 * s},
        {"Start": T0 + 6 * s, "End": T0 + 20 * s},
        {"Start": T0 + 30 * s, "End": T0 + 40 * s},
        {"Start": T0 + 50 * s, "End": T0 + 54 * s},
    ]
    assert page["Gaps"] == [
        {"Start": T0 + 4 * s, "End": T0 + 6 * s},
        {"Start": T0 + 20 * s, "End": T0 + 30 * s},
        {"Start": T0 + 40 * s, "End": T0 + 50 * s},
    ]
    status, window = spans(web, session_id, holes, StartPos=T0 + 15 * s, Duration=20 * s)
    assert window["Spans"] == [
        {"Start": T0 + 15 * s, "End": T0 + 20 * s},
        {"Start": T0 + 30 * s, "End": T0 + 35 * s},
    ]


def test_spans_bad_input_and_other_users(
    web: str, worker: subprocess.Popen, session_id: str, holes: str, service_env: dict[str, str]
) -> None:
    assert spans(web, session_id, holes, StartPos="yesterday")[1]["ErrorCode"] == 2
    status, answer = spans(web, session_id, holes, Cursor="bogus")
    assert (status, answer["ErrorCode"]) == (400, 2) and "Cursor" in answer["ErrorMessage"]
    assert spans(web, session_id, "live/nothing-here")[1]["ErrorCode"] == 4
    bob = devstack.issue_session(service_env, "bob")
    status, answer = spans(web, bob, holes)  # userid alice with bob's session
    assert answer["ErrorCode"] == 3 and status in (401, 403)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> str:
    rec = generate_recording(tmp_path_factory.mktemp("rec"), SampleSpec(seconds=4))
    upload_recording(s3, "archive", "live/lifecycle", rec)
    return "live/lifecycle"


def wait_received(client: Receiver, count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(client.received) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def test_callback_delivered_once_on_success(
    web: str, worker: subprocess.Popen, session_id: str, recording: str, service_env: dict[str, str]
) -> None:
    with receiver() as client:
        body = export_body(session_id, "alice", PDT_MS, 2000, LivePath=recording, CallbackUrl=client.url)
        status, answer = poll_export(web, body)
        assert (status, answer["ErrorCode"]) == (200, 5), answer
        wait_received(client, 1)
        time.sleep(1.5)  # a second delivery, were there one, would have come by now
        assert len(client.received) == 1
        headers, raw = client.received[0]
        payload = Webhook(service_env["RESOURCED_CALLBACK_SECRET"]).verify(raw, headers)
        assert payload["JobId"] == answer["JobId"] and payload["ErrorCode"] == 5
        assert payload["S3Dir"] == answer["S3Dir"] and payload["Version"] == answer["Version"]


def test_callback_retried_under_one_webhook_id_and_no_media_says_where_media_is(
    web: str, worker: subprocess.Popen, session_id: str, recording: str, service_env: dict[str, str]
) -> None:
    with receiver() as client:
        client.answers = [(500, {"error": "down"})]
        start_in_seconds = PDT_MS // 1000  # a client that sent seconds
        body = export_body(
            session_id, "alice", start_in_seconds, 2000, LivePath=recording, CallbackUrl=client.url
        )
        status, answer = poll_export(web, body)
        assert (status, answer["ErrorCode"]) == (404, 4), answer
        assert "the recording covers 2023-11-14T22:13:20Z" in answer["ErrorMessage"]
        assert "StartPos looks like seconds" in answer["ErrorMessage"]
        wait_received(client, 2)
        assert len(client.received) == 2
        assert len({headers["webhook-id"] for headers, _ in client.received}) == 1
        payload = Webhook(service_env["RESOURCED_CALLBACK_SECRET"]).verify(
            client.received[1][1], client.received[1][0]
        )
        assert payload == {"ErrorCode": 4, "ErrorMessage": answer["ErrorMessage"], "JobId": answer["JobId"]}


def test_a_callback_url_the_policy_refuses_is_2_before_any_job(web: str, session_id: str) -> None:
    body = export_body(
        session_id, "alice", PDT_MS, 2000, LivePath="live/x", CallbackUrl="http://10.1.2.3/hook"
    )
    response = requests.post(f"{web}/resource/v1/i/export-to-s3dir", json=body, timeout=10)
    assert (response.status_code, response.json()["ErrorCode"]) == (400, 2)
    assert "CallbackUrl" in response.json()["ErrorMessage"]


def test_a_snapshot_in_the_middle_of_a_gop(
    web: str, worker: subprocess.Popen, session_id: str, recording: str, tmp_path: Path
) -> None:
    body = {
        "storage_info": storage_info("archive", "exports"),
        "LivePath": recording,
        "StartPos": PDT_MS + 1000,
        "StartTime": "540",  # 1.54 s: frame 38 of the GOP that starts at frame 25
        "Width": 80,
        "SessionId": session_id,
        "userid": "alice",
    }
    response = requests.post(f"{web}/resource/v1/i/snapshot", json=body, timeout=30)
    answer = response.json()
    # The first request is held (long polling) while the worker decodes one GOP: answered 5.
    assert (response.status_code, answer["ErrorCode"]) == (200, 5), answer
    assert answer["VideoPath"] == "" and answer["JobId"]
    jpeg = tmp_path / "still.jpg"
    jpeg.write_bytes(requests.get(answer["ImagePath"], timeout=10).content)
    with av.open(str(jpeg)) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (80, 48)
    assert read_frame_index(frame) == 38
    missing = requests.post(
        f"{web}/resource/v1/i/snapshot", json={**body, "StartPos": PDT_MS + 60_000}, timeout=30
    )
    deadline = time.monotonic() + 30
    while missing.json()["ErrorCode"] == 1 and time.monotonic() < deadline:
        time.sleep(0.2)
        missing = requests.post(
            f"{web}/resource/v1/i/snapshot", json={**body, "StartPos": PDT_MS + 60_000}, timeout=30
        )
    assert (missing.status_code, missing.json()["ErrorCode"]) == (404, 4)
    assert "the recording covers" in missing.json()["ErrorMessage"]


@pytest.fixture(scope="module")
def long_recording(s3: Any) -> str:
    """400 segments of 10 s (66 min 40 s: ten pages of 40 entries), s350 missing."""
    folder = "live/long"
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:10", "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z"]
    for i in range(400):
        lines += ["#EXTINF:10.000,", f"seg/s{i:03d}.ts"]
    s3.put_object(
        Bucket="archive", Key=f"{folder}/index.m3u8", Body="\n".join([*lines, "#EXT-X-ENDLIST", ""]).encode()
    )

    def put(i: int) -> None:
        s3.put_object(Bucket="archive", Key=f"{folder}/seg/s{i:03d}.ts", Body=b"x")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, [i for i in range(400) if i != 350]))
    return folder


def test_spans_are_paged_and_join_into_the_whole(
    web: str, worker: subprocess.Popen, session_id: str, long_recording: str
) -> None:
    hole = (T0 + 3_500_000, T0 + 3_510_000)  # s350, missing from S3
    status, first = spans(web, session_id, long_recording)  # a page is at most 40 entries
    assert (status, first["ErrorCode"]) == (200, 0) and first["Cursor"]
    assert (first["Spans"], first["Gaps"]) == ([{"Start": T0, "End": T0 + 400_000}], [])
    pages, cursor, gaps, ends = 1, first["Cursor"], [], [T0 + 400_000]
    while cursor:
        status, page = spans(web, session_id, long_recording, Cursor=cursor)
        assert (status, page["ErrorCode"]) == (200, 0)
        pages, cursor = pages + 1, page["Cursor"]
        gaps += page["Gaps"]
        assert page["Spans"][0]["Start"] == ends[-1]  # each page goes on where the last stopped
        ends.append(page["Spans"][-1]["End"])
    assert (pages, ends[-1]) == (10, T0 + 4_000_000)
    assert gaps == [{"Start": hole[0], "End": hole[1]}]  # on the page holding s350, once
    info = storage_info("archive")
    whole = Client(web, session_id, "alice").all_spans(live_path=long_recording, storage_info=info)
    assert whole.spans == [(T0, hole[0]), (hole[1], T0 + 4_000_000)] and whole.gaps == [hole]


def test_snapshot_bad_input_and_other_users(
    web: str, worker: subprocess.Popen, session_id: str, recording: str, service_env: dict[str, str]
) -> None:
    body = {
        "storage_info": storage_info("archive", "exports"),
        "LivePath": recording,
        "SessionId": session_id,
    }
    for bad, field in (({"StartPos": "x"}, "StartPos"), ({"StartPos": 1, "Width": 3}, "Width")):
        response = requests.post(
            f"{web}/resource/v1/i/snapshot", json={**body, "userid": "alice", **bad}, timeout=10
        )
        assert (response.status_code, response.json()["ErrorCode"]) == (400, 2)
        assert field in response.json()["ErrorMessage"]
    bob = devstack.issue_session(service_env, "bob")
    response = requests.post(
        f"{web}/resource/v1/i/snapshot",
        json={**body, "SessionId": bob, "userid": "alice", "StartPos": PDT_MS},
        timeout=10,
    )
    assert response.json()["ErrorCode"] == 3


def put_minute(s3: Any, folder: str, minute: int, entries: int, live: bool = False) -> None:
    """Playlist p{minute} of `entries` 2 s segments from 00:{minute}:00, and its segments."""
    name = f"p{minute:02d}"
    text = playlist(name, entries, f"2026-01-01T00:{minute:02d}:00Z")
    s3.put_object(
        Bucket="archive",
        Key=f"{folder}/{name}.m3u8",
        Body=(text.replace("#EXT-X-ENDLIST\n", "") if live else text).encode(),
    )
    for i in range(entries):
        s3.put_object(Bucket="archive", Key=f"{folder}/{name}/s{i:03d}.ts", Body=b"x")


def kept_listing_of(client: redis.Redis, folder: str) -> tuple[str, Kept]:
    for name in client.scan_iter(keys.archive_listing("*")):
        kept = decode(client.get(name))
        if kept.rows and kept.rows[0].key.startswith(folder + "/"):
            return name, kept
    raise AssertionError(f"no listing kept for {folder}")


def test_a_later_walk_sees_a_live_recording_grow_at_once_and_a_backfill_after_the_relist(
    web: str, worker: subprocess.Popen, session_id: str, s3: Any, redis_url: str
) -> None:
    folder, s = "live/kept", 1000
    put_minute(s3, folder, 2, 5)
    put_minute(s3, folder, 3, 3, live=True)
    window = {"StartPos": T0, "Duration": 10 * 60 * s}
    first = spans(web, session_id, folder, **window)[1]
    assert first["Spans"][-1] == {"Start": T0 + 180 * s, "End": T0 + 186 * s}, first

    client = redis.Redis.from_url(redis_url)
    name, kept = kept_listing_of(client, folder)
    client.set(name, encode(Kept(kept.listed_at - 600, kept.rows)))  # a walk ten minutes later
    put_minute(s3, folder, 3, 6, live=True)  # the live playlist grew
    put_minute(s3, folder, 4, 5)  # the recorder went on to the next one
    put_minute(s3, folder, 1, 5)  # and an hour was backfilled before them
    later = spans(web, session_id, folder, **window)[1]
    assert later["ErrorCode"] == 0, later
    assert later["Spans"][-2:] == [
        {"Start": T0 + 180 * s, "End": T0 + 192 * s},
        {"Start": T0 + 240 * s, "End": T0 + 250 * s},
    ]

    deadline = time.monotonic() + 15  # the worker lists the whole folder after answering
    while kept_listing_of(client, folder)[1].listed_at < time.time() - 60:
        assert time.monotonic() < deadline, "the worker did not list the folder after answering"
        time.sleep(0.1)
    after = spans(web, session_id, folder, **window)[1]
    assert [span["Start"] for span in after["Spans"]] == [
        T0 + 60 * s,
        T0 + 120 * s,
        T0 + 180 * s,
        T0 + 240 * s,
    ]
