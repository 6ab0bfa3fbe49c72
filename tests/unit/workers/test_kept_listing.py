"""The folder listing recording-spans keeps (workers/archive/kept_listing.py), moto in-process
and fakeredis: a later walk's page probes the folder's end instead of listing it all, sees a live
playlist grow and a new one named after it, and everything else once the relist after the answer
has run; one relist at a time; a Redis without the listing (lost, down, an older format) costs a
full LIST and never an answer."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Celery

from tasks.exports.spans_rpc import SpansRequest
from tasks.platform import keys
from tasks.platform.celery_app import TaskName
from tasks.storage import ListedObject
from tests.helpers import moto_buckets
from tests.unit.workers.test_spans import FOLDER, SOURCE, T0, Folder, playlist
from workers.archive import spans as spans_module
from workers.archive.kept_listing import PROBE_KEYS, Kept, decode, encode, merged
from workers.archive.ranges import Lookup
from workers.archive.spans import NotARecording, relist_if_stale
from workers.runtime import spans_task

STEP_MS = 60_000  # a playlist a minute: a whole small folder on one page


class Lists:
    """The LIST requests of the recording's own folder: (StartAfter, MaxKeys) of each."""

    def __init__(self, folder: Folder) -> None:
        self.calls: list[tuple[str, int]] = []
        events = folder.store.client("us-east-1").meta.events
        events.register("provide-client-params.s3.ListObjectsV2", self._seen)

    def _seen(self, params: dict[str, Any], **_: Any) -> None:
        if params["Prefix"] == f"{FOLDER}/":
            self.calls.append((str(params.get("StartAfter", "")), int(params.get("MaxKeys", 1000))))

    def full(self) -> int:
        return sum(1 for after, _ in self.calls if after == "")

    def probes(self) -> list[tuple[str, int]]:
        return [call for call in self.calls if call[0] != ""]


@pytest.fixture
def folder() -> Iterator[Folder]:
    with moto_buckets("archive") as client:
        yield Folder(client)


def hour(folder: Folder, n: int, entries: int = 5, name: str = "", ended: bool = True) -> None:
    name = name or f"p{n:02d}"
    text = playlist(name, entries, 2.0, T0 + n * STEP_MS)
    folder.put(f"{name}.m3u8", text if ended else text.replace("#EXT-X-ENDLIST\n", ""))


def age(folder: Folder, seconds: float) -> None:
    """Make the kept listing as old as a walk `seconds` after the last one finds it."""
    client, name = folder.index.client, keys.archive_listing(folder.index.recording)
    kept = decode(client.get(name))
    client.set(name, encode(Kept(kept.listed_at - seconds, kept.rows)))


def starts(page: Any) -> list[int]:
    return [a for a, _ in page.spans]


def test_a_later_walk_probes_the_folder_end_and_sees_a_live_playlist_grow(folder: Folder) -> None:
    for n in range(1, 6):
        hour(folder, n, ended=n < 5)  # p05 is live
    lists = Lists(folder)
    whole = folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    assert (lists.full(), lists.probes()) == (1, [])
    assert whole.spans[-1] == (T0 + 5 * STEP_MS, T0 + 5 * STEP_MS + 10_000)

    again = folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)  # the same walk: no LIST at all
    assert (lists.full(), again.spans) == (1, whole.spans)

    age(folder, 60)
    hour(folder, 5, entries=8, ended=False)  # p05 grew
    hour(folder, 6)  # and the recorder went on to p06
    later = folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    assert lists.full() == 1  # answered without listing the folder
    assert lists.probes() == [(f"{FOLDER}/p05.m3u", PROBE_KEYS)]  # one small LIST from the end
    assert later.spans[-2:] == [
        (T0 + 5 * STEP_MS, T0 + 5 * STEP_MS + 16_000),
        (T0 + 6 * STEP_MS, T0 + 6 * STEP_MS + 10_000),
    ]

    assert relist_if_stale(
        folder.store, SOURCE, FOLDER, folder.index
    )  # what the spans task does after answering
    assert lists.full() == 2
    assert not relist_if_stale(folder.store, SOURCE, FOLDER, folder.index)  # fresh again: nothing to do
    folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    assert (lists.full(), len(lists.probes())) == (2, 1)


def test_a_change_away_from_the_end_shows_once_the_relist_has_run(folder: Folder) -> None:
    for n in range(2, 5):
        hour(folder, n)
    folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    age(folder, 60)
    hour(folder, 1)  # a backfilled hour, named before the last one
    folder.client.delete_object(Bucket="archive", Key=f"{FOLDER}/p03.m3u8")  # retention, say
    folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)  # may still show the folder as it was
    assert relist_if_stale(folder.store, SOURCE, FOLDER, folder.index)
    after = folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    assert starts(after) == [T0 + STEP_MS, T0 + 2 * STEP_MS, T0 + 4 * STEP_MS]


def test_unpadded_names_probe_from_the_last_by_natural_order(folder: Folder) -> None:
    for n in (8, 9, 10, 11):
        hour(folder, n, name=f"h{n}")  # text order: h10, h11, h8, h9
    folder.spans(start_ms=T0, duration_ms=24 * STEP_MS)
    age(folder, 60)
    hour(folder, 12, name="h12")  # sorts between h11 and h8: the probe from h11 reaches it
    lists = Lists(folder)
    page = folder.spans(start_ms=T0, duration_ms=24 * STEP_MS)
    assert lists.full() == 0 and [after for after, _ in lists.probes()] == [f"{FOLDER}/h11.m3u"]
    assert starts(page) == [T0 + n * STEP_MS for n in (8, 9, 10, 11, 12)]


def test_one_relist_at_a_time(folder: Folder) -> None:
    hour(folder, 1)
    folder.spans(start_ms=T0, duration_ms=2 * STEP_MS)
    age(folder, 60)
    lock = keys.archive_relisting(folder.index.recording)
    folder.index.client.set(lock, "1", ex=60)  # another task is listing the folder
    lists = Lists(folder)
    assert not relist_if_stale(folder.store, SOURCE, FOLDER, folder.index)
    assert lists.calls == []
    folder.index.client.delete(lock)
    assert relist_if_stale(folder.store, SOURCE, FOLDER, folder.index)
    assert folder.index.client.get(lock) is None  # given back: its own token


def test_without_a_kept_listing_a_page_lists_first(folder: Folder) -> None:
    hour(folder, 1)
    name = keys.archive_listing(folder.index.recording)
    folder.index.client.set(name, b"x\x9c not a listing")  # lost, corrupt, or an older version's
    lists = Lists(folder)
    assert starts(folder.spans(start_ms=T0, duration_ms=2 * STEP_MS)) == [T0 + STEP_MS]
    assert lists.full() == 1
    assert decode(folder.index.client.get(name)).rows[0].key == f"{FOLDER}/p01.m3u8"  # kept anew

    server = fakeredis.FakeServer()
    server.connected = False  # Redis down: every page LISTs, every page answers
    folder.index.client = fakeredis.FakeRedis(server=server)
    for _ in range(2):
        assert starts(folder.spans(start_ms=T0, duration_ms=2 * STEP_MS)) == [T0 + STEP_MS]
    assert lists.full() == 3
    assert not relist_if_stale(folder.store, SOURCE, FOLDER, folder.index)


def test_merged_replaces_only_the_names_the_probe_covered() -> None:
    def row(key: str, etag: str = "e") -> ListedObject:
        return ListedObject(key, etag, 1, 0.0)

    rows = [row("r/a.m3u8"), row("r/b.m3u8"), row("r/c.m3u8"), row("r/e.m3u8")]
    found = [row("r/b.m3u8", "new"), row("r/b.ts"), row("r/d.m3u8")]  # c gone; e beyond the page
    result = merged(rows, "r/b.m3u", found, covered_to="r/d.m3u8")
    assert [(o.key, o.etag) for o in result] == [
        ("r/a.m3u8", "e"),
        ("r/b.m3u8", "new"),
        ("r/d.m3u8", "e"),
        ("r/e.m3u8", "e"),
    ]
    to_end = merged(rows, "r/b.m3u", found, covered_to=None)  # the LIST reached the folder's end
    assert [o.key for o in to_end] == ["r/a.m3u8", "r/b.m3u8", "r/d.m3u8"]


def test_a_listing_stamped_by_a_clock_ahead_is_stale_not_frozen(folder: Folder) -> None:
    for n in range(1, 5):
        hour(folder, n)
    folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    age(folder, -3600)  # stamped by a worker whose clock runs an hour ahead
    hour(folder, 5)
    assert starts(folder.spans(start_ms=T0, duration_ms=8 * STEP_MS))[-1] == T0 + 5 * STEP_MS  # probed
    assert relist_if_stale(folder.store, SOURCE, FOLDER, folder.index)  # and stamped again here


def test_a_probe_that_finds_every_playlist_gone_lists_the_folder_before_answering(folder: Folder) -> None:
    hour(folder, 1, name="live", ended=False)
    folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    age(folder, 60)
    hour(folder, 1, name="2026-01-01")  # the day's live playlist renamed at its end: sorts before
    folder.client.delete_object(Bucket="archive", Key=f"{FOLDER}/live.m3u8")
    lists = Lists(folder)
    assert starts(folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)) == [T0 + STEP_MS]
    assert lists.full() == 1

    folder.client.delete_object(Bucket="archive", Key=f"{FOLDER}/2026-01-01.m3u8")
    age(folder, 60)
    with pytest.raises(NotARecording):
        folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    assert folder.index.client.get(keys.archive_listing(folder.index.recording)) is None  # none kept
    hour(folder, 2)  # a recording starting now shows at once
    assert starts(folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)) == [T0 + 2 * STEP_MS]


def test_a_live_playlist_neither_last_by_name_nor_last_written_is_probed(folder: Folder) -> None:
    hour(folder, 1, name="cam", ended=False)  # live, read whole by the page: the index knows it
    hour(folder, 2, name="cam_clip")  # sorts after it, written with it
    folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    age(folder, 60)
    hour(folder, 1, name="cam", entries=8, ended=False)  # it grew by 6 s
    lists = Lists(folder)
    page = folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    assert page.spans[0] == (T0 + STEP_MS, T0 + STEP_MS + 16_000)
    assert sorted(after for after, _ in lists.probes()) == [f"{FOLDER}/cam.m3u", f"{FOLDER}/cam_clip.m3u"]


def test_segments_beside_the_playlists_do_not_hide_the_next_one(folder: Folder) -> None:
    def put(n: int) -> None:  # ffmpeg's default names: h0719.m3u8 beside h07190000.ts ...
        name = f"h{n:04d}"
        text = playlist(name, 20, 2.0, T0 + (n - 719) * STEP_MS).replace(f"{name}/s", name)
        folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/{name}.m3u8", Body=text.encode())
        for i in range(20):
            folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/{name}{i:05d}.ts", Body=b"x")

    put(719)
    folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    age(folder, 60)
    put(720)
    lists = Lists(folder)
    assert starts(folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)) == [T0, T0 + STEP_MS]
    assert lists.full() == 0 and len(lists.probes()) == 2  # its own page, then past its segments


def test_a_failed_relist_keeps_the_lock_until_it_expires(
    folder: Folder, monkeypatch: pytest.MonkeyPatch
) -> None:
    hour(folder, 1)
    folder.spans(start_ms=T0, duration_ms=2 * STEP_MS)
    age(folder, 60)

    def cut_short(_: Lookup) -> list[ListedObject]:
        raise SoftTimeLimitExceeded()  # a folder too large to LIST within the task's limit

    with monkeypatch.context() as patch:
        patch.setattr(Lookup, "listed", cut_short)
        with pytest.raises(SoftTimeLimitExceeded):
            relist_if_stale(folder.store, SOURCE, FOLDER, folder.index)
        lock = keys.archive_relisting(folder.index.recording)
        assert folder.index.client.ttl(lock) > 0  # the next page's task does not try again at once
        assert not relist_if_stale(folder.store, SOURCE, FOLDER, folder.index)
    folder.index.client.delete(lock)  # expired
    assert relist_if_stale(folder.store, SOURCE, FOLDER, folder.index)


def test_the_spans_task_relists_after_a_no_media_answer_too(
    folder: Folder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale listing can make a page answer 4 (its only playlist is no longer one); the task
    lists the folder after that answer as after a 0, so the next answer sees the recording."""
    hour(folder, 2, name="a")
    folder.spans(start_ms=T0, duration_ms=8 * STEP_MS)
    age(folder, 60)
    folder.put("a.m3u8", "not a playlist\n")
    hour(folder, 1, name="0-backfill")  # sorts before a: the probe does not see it
    monkeypatch.setattr(
        spans_task, "runtime", lambda: SimpleNamespace(store=folder.store, redis=fakeredis.FakeRedis())
    )
    monkeypatch.setattr(spans_module, "open_index", lambda *_, **__: folder.index)
    app = Celery("kept-listing-test")
    spans_task.register_spans_task(app)
    task = app.tasks[TaskName.SPANS.value]
    request = SpansRequest(SOURCE, FOLDER, T0, 8 * STEP_MS, "", "", "reply")
    assert [task(request.to_json()), task(request.to_json())] == [4, 0]


def test_segments_named_otherwise_cost_no_second_probe(folder: Folder) -> None:
    """index.m3u8 beside seg_00000.ts ...: a LIST past the stem "index" would list the same
    segments again, so the probe stops at its one LIST."""
    text = playlist("x", 20, 2.0, T0).replace("x/s", "seg_")
    folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/index.m3u8", Body=text.encode())
    for i in range(20):
        folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/seg_{i:05d}.ts", Body=b"x")
    folder.spans(start_ms=T0, duration_ms=STEP_MS)
    age(folder, 60)
    lists = Lists(folder)
    assert folder.spans(start_ms=T0, duration_ms=STEP_MS).spans == [(T0, T0 + 40_000)]
    assert lists.probes() == [(f"{FOLDER}/index.m3u", PROBE_KEYS)]
