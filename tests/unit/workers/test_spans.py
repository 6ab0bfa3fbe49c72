"""recording-spans from the archive index (moto in-process, fakeredis): spans and gaps of a
recording with missing segments, a PROGRAM-DATE-TIME jump and two playlists, windows, paging,
and that no segment's bytes are ever read."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest

from tasks.exports.spec import S3Location
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.helpers import moto_buckets
from workers.archive import spans as spans_module
from workers.archive.index import ArchiveIndex, recording_id
from workers.archive.spans import (
    BadCursor,
    NotARecording,
    coverage_note,
    decode_cursor,
    encode_cursor,
    gaps_between,
    merge_spans,
    recording_spans,
)
from workers.archive.variants import UnknownRendition

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SOURCE = S3Location("archive", "us-east-1")
FOLDER = "rec/cam"


def iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def playlist(
    name: str, count: int, seg_s: float, start_ms: float, jump_after: int = -1, jump_ms: float = 0
) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{int(seg_s)}"]
    at = start_ms
    lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso(at)}")
    for i in range(count):
        if i == jump_after:
            at += jump_ms
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso(at)}")
        lines += [f"#EXTINF:{seg_s:.3f},", f"{name}/s{i:05d}.ts"]
        at += seg_s * 1000
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


class Folder:
    """A recording in moto whose segments are tiny placeholder objects; counts segment GETs."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.store = ObjectStore(Settings())
        self.segment_gets: list[str] = []
        self.lists: list[str] = []
        events = self.store.client("us-east-1").meta.events
        events.register(
            "provide-client-params.s3.GetObject",
            lambda params, **_: (
                self.segment_gets.append(params["Key"]) if params["Key"].endswith(".ts") else None
            ),
        )
        events.register(
            "provide-client-params.s3.ListObjectsV2", lambda params, **_: self.lists.append(params["Prefix"])
        )
        self.index = ArchiveIndex(
            fakeredis.FakeRedis(), recording_id("archive", "us-east-1", FOLDER), 3600, 1 << 22
        )

    def put(self, name: str, text: str, skip: tuple[int, ...] = ()) -> None:
        self.client.put_object(Bucket="archive", Key=f"{FOLDER}/{name}", Body=text.encode())
        for line in text.splitlines():
            if line.endswith(".ts") and int(line[-8:-3]) not in skip:
                self.client.put_object(Bucket="archive", Key=f"{FOLDER}/{line}", Body=b"x")

    def spans(self, **kwargs: Any) -> Any:
        return recording_spans(self.store, SOURCE, FOLDER, index=self.index, **kwargs)


@pytest.fixture
def folder() -> Iterator[Folder]:
    with moto_buckets("archive") as client:
        yield Folder(client)


def test_missing_segments_a_pdt_jump_and_two_playlists(folder: Folder) -> None:
    # a: 0-20 s with s00002 (4-6 s) missing; b: 30-40 s, then a jump of 10 s, 50-54 s.
    folder.put("a.m3u8", playlist("a", 10, 2.0, T0), skip=(2,))
    folder.put("b.m3u8", playlist("b", 7, 2.0, T0 + 30_000, jump_after=5, jump_ms=10_000))
    page = folder.spans()
    assert page.spans == [
        (T0, T0 + 4000),
        (T0 + 6000, T0 + 20_000),
        (T0 + 30_000, T0 + 40_000),
        (T0 + 50_000, T0 + 54_000),
    ]
    assert page.gaps == [(T0 + 4000, T0 + 6000), (T0 + 20_000, T0 + 30_000), (T0 + 40_000, T0 + 50_000)]
    assert page.cursor == ""
    assert page.renditions == [{"Name": "", "Width": 0, "Height": 0, "Bandwidth": 0, "Codec": ""}]
    assert folder.segment_gets == []  # never a segment's bytes


def test_a_window(folder: Folder) -> None:
    folder.put("a.m3u8", playlist("a", 10, 2.0, T0), skip=(2,))
    page = folder.spans(start_ms=T0 + 3000, duration_ms=5000)
    assert page.spans == [(T0 + 3000, T0 + 4000), (T0 + 6000, T0 + 8000)]
    assert page.gaps == [(T0 + 4000, T0 + 6000)]


def test_overlapping_playlists_count_once(folder: Folder) -> None:
    folder.put("a.m3u8", playlist("a", 10, 2.0, T0), skip=(2,))
    folder.put("c.m3u8", playlist("c", 3, 2.0, T0 + 2000))  # covers a's hole at 4-6 s
    assert folder.spans().spans == [(T0, T0 + 20_000)]


def test_pages_join_into_the_whole(folder: Folder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spans_module, "PAGE_SEGMENTS", 4)
    folder.put("a.m3u8", playlist("a", 10, 2.0, T0), skip=(2,))
    folder.put("b.m3u8", playlist("b", 5, 2.0, T0 + 30_000))
    whole, gaps, cursor, pages = [], [], "", 0
    while True:
        page = folder.spans(cursor=cursor)
        pages += 1
        for span in page.spans:
            if whole and whole[-1][1] == span[0]:
                whole[-1] = (whole[-1][0], span[1])  # a span cut at a page boundary
            else:
                whole.append(span)
        gaps += page.gaps
        cursor = page.cursor
        if not cursor:
            break
    assert pages >= 4
    assert whole == [(T0, T0 + 4000), (T0 + 6000, T0 + 20_000), (T0 + 30_000, T0 + 40_000)]
    assert gaps == [(T0 + 4000, T0 + 6000), (T0 + 20_000, T0 + 30_000)]  # the gap across pages, once


def test_a_folder_without_a_media_playlist_is_not_a_recording(folder: Folder) -> None:
    with pytest.raises(NotARecording):
        folder.spans()
    folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/notes.m3u8", Body=b"hello")
    with pytest.raises(NotARecording):
        folder.spans()


def test_a_cursor_of_another_window_is_refused(folder: Folder) -> None:
    folder.put("a.m3u8", playlist("a", 10, 2.0, T0))
    with pytest.raises(BadCursor):
        folder.spans(start_ms=T0, duration_ms=1000, cursor=encode_cursor(T0 + 5000, None))
    with pytest.raises(BadCursor):
        decode_cursor("garbage!")


def test_merge_and_gaps_units() -> None:
    assert decode_cursor(encode_cursor(5, 3)) == (5, 3) and decode_cursor(encode_cursor(5, None)) == (5, None)
    assert gaps_between([(10, 20), (25, 30)], 5) == [(5, 10), (20, 25)]
    assert gaps_between([(10, 20)], None) == []


def test_a_ladder_lists_its_renditions_and_spans_one(folder: Folder) -> None:
    master = (
        "#EXTM3U\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e"\n'
        "low.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720,CODECS="avc1.4d401f"\n'
        "hd.m3u8\n"
    )
    folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/master.m3u8", Body=master.encode())
    folder.put("hd.m3u8", playlist("hd", 5, 2.0, T0))
    folder.put("low.m3u8", playlist("low", 10, 2.0, T0), skip=(2,))
    best = folder.spans()
    assert [(r["Name"], r["Width"], r["Bandwidth"]) for r in best.renditions] == [
        ("hd.m3u8", 1280, 2_800_000),
        ("low.m3u8", 640, 800_000),
    ]
    assert best.spans == [(T0, T0 + 10_000)]  # the best rendition alone, never spliced
    low = recording_spans(folder.store, SOURCE, FOLDER, index=folder.index, rendition="640x360")
    assert low.spans == [(T0, T0 + 4000), (T0 + 6000, T0 + 20_000)]
    with pytest.raises(UnknownRendition):
        recording_spans(folder.store, SOURCE, FOLDER, index=folder.index, rendition="4k")


def test_a_rendition_in_a_subfolder_costs_one_head_however_many_segments_it_holds(folder: Folder) -> None:
    master = (
        "#EXTM3U\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n"
        "360p/index.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720\n"
        "720p/index.m3u8\n"
    )
    folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/master.m3u8", Body=master.encode())
    for name, count in (("360p", 10), ("720p", 5)):
        text = playlist("x", count, 2.0, T0).replace("x/", "")  # segments beside their playlist
        folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/{name}/index.m3u8", Body=text.encode())
        for i in range(count):
            folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/{name}/s{i:05d}.ts", Body=b"x")
    heads: list[str] = []
    folder.store.client("us-east-1").meta.events.register(
        "provide-client-params.s3.HeadObject", lambda params, **_: heads.append(params["Key"])
    )
    assert folder.spans().spans == [(T0, T0 + 10_000)]  # 720p, the best
    assert heads == [f"{FOLDER}/720p/index.m3u8"]
    assert f"{FOLDER}/720p/" not in folder.lists  # the rendition's folder is never listed whole
    text = playlist("x", 7, 2.0, T0).replace("x/", "")  # the live rendition grew
    folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/720p/index.m3u8", Body=text.encode())
    for i in range(5, 7):
        folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/720p/s{i:05d}.ts", Body=b"x")
    assert folder.spans().spans == [(T0, T0 + 14_000)]  # its new ETag: read again


def test_merge_spans_clips_to_the_window() -> None:
    class S:
        def __init__(self, a: float, b: float) -> None:
            self.start_ms, self.end_ms = a, b

    assert merge_spans([S(0, 10), S(10, 20), S(30, 40)], 5, 35) == [(5, 20), (30, 35)]  # type: ignore[list-item]


def test_a_no_media_note_says_what_the_recording_covers(folder: Folder) -> None:
    folder.put("a.m3u8", playlist("a", 10, 2.0, T0))
    folder.put("b.m3u8", playlist("b", 5, 2.0, T0 + 60_000))
    in_the_hole = coverage_note(folder.store, SOURCE, FOLDER, T0 + 30_000, T0 + 35_000, folder.index)
    assert "the recording covers 2026-01-01T00:00:00Z-2026-01-01T00:01:" in in_the_hole
    assert "nearest media before ends at 2026-01-01T00:00:20Z" in in_the_hole
    assert "nearest media after starts at 2026-01-01T00:01:00Z" in in_the_hole
    assert "seconds" not in in_the_hole
    in_seconds = coverage_note(folder.store, SOURCE, FOLDER, T0 // 1000 + 5, T0 // 1000 + 10, folder.index)
    assert "StartPos looks like seconds: it is in milliseconds" in in_seconds
    assert "the request asked for 1970-01-21" in in_seconds


def test_a_no_media_note_points_past_segments_storage_lacks(folder: Folder) -> None:
    """Segments 6-12 s listed but missing: the nearest media is readable media (it named the
    missing neighbours, 8 s and 10 s, inside the hole)."""
    folder.put("a.m3u8", playlist("a", 10, 2.0, T0), skip=(3, 4, 5))
    note = coverage_note(folder.store, SOURCE, FOLDER, T0 + 8000, T0 + 9000, folder.index)
    assert "nearest media before ends at 2026-01-01T00:00:06Z" in note
    assert "nearest media after starts at 2026-01-01T00:00:12Z" in note


def test_an_empty_page_jumps_a_long_hole_inside_one_playlist(folder: Folder) -> None:
    """A PROGRAM-DATE-TIME jump of 10 days within one playlist: the page over the hole ends
    where media resumes (it walked the hole an hour a page: 240 empty pages)."""
    ten_days = 10 * 24 * 3600 * 1000
    folder.put("a.m3u8", playlist("a", 8, 2.0, T0, jump_after=4, jump_ms=ten_days))
    whole, gaps, pages = walk(folder)
    assert whole == [(T0, T0 + 8000), (T0 + 8000 + ten_days, T0 + 16_000 + ten_days)]
    assert gaps == [(T0 + 8000, T0 + 8000 + ten_days)]
    assert pages <= 3


@pytest.mark.parametrize("init_held", [True, False])
def test_segments_whose_init_section_is_missing_are_a_gap(folder: Folder, init_held: bool) -> None:
    """fMP4: a segment cannot be read without its #EXT-X-MAP initialization section, so where
    S3 lacks it the playlist's entries are a gap (an export answers 4 there)."""
    text = playlist("a", 5, 2.0, T0).replace(
        "#EXT-X-PROGRAM-DATE-TIME", '#EXT-X-MAP:URI="a/init.mp4"\n#EXT-X-PROGRAM-DATE-TIME', 1
    )
    folder.put("a.m3u8", text)
    if init_held:
        folder.client.put_object(Bucket="archive", Key=f"{FOLDER}/a/init.mp4", Body=b"init")
    page = folder.spans(start_ms=T0, duration_ms=10_000)
    assert page.spans == ([(T0, T0 + 10_000)] if init_held else [])
    assert page.gaps == []  # the window's first page: a gap needs media before it


def test_pages_of_one_walk_share_one_listing_of_the_folder(
    folder: Folder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spans_module, "PAGE_SEGMENTS", 4)
    folder.put("a.m3u8", playlist("a", 10, 2.0, T0))
    first = folder.spans()
    assert folder.lists.count(f"{FOLDER}/") == 1
    folder.spans(cursor=first.cursor)
    assert folder.lists.count(f"{FOLDER}/") == 1  # the next page reused it
    folder.index.client.delete(f"resourced:archive:{folder.index.recording}:listing")  # expired
    folder.spans(cursor=first.cursor)
    assert folder.lists.count(f"{FOLDER}/") == 2


def walk(folder: Folder) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
    """Every page of the recording, spans cut at page boundaries joined again."""
    whole: list[tuple[int, int]] = []
    gaps: list[tuple[int, int]] = []
    cursor, pages = "", 0
    while True:
        page = folder.spans(cursor=cursor)
        pages += 1
        for span in page.spans:
            if whole and whole[-1][1] == span[0]:
                whole[-1] = (whole[-1][0], span[1])
            else:
                whole.append(span)
        gaps += page.gaps
        cursor = page.cursor
        if not cursor:
            return whole, gaps, pages


def test_pages_read_lazily_give_the_whole_answer(folder: Folder, monkeypatch: pytest.MonkeyPatch) -> None:
    # a: ordered, read lazily from the index; c overlaps it (the same media counted once, its
    # own entries merged in); d goes back in time (PROGRAM-DATE-TIME -6 s): read whole, sorted.
    folder.put("a.m3u8", playlist("a", 10, 2.0, T0), skip=(2, 7))
    folder.put("c.m3u8", playlist("c", 3, 2.0, T0 + 13_000))
    folder.put("d.m3u8", playlist("d", 8, 2.0, T0 + 30_000, jump_after=4, jump_ms=-6000), skip=(1,))
    one_page = folder.spans()
    assert one_page.cursor == ""
    summaries = folder.index.summaries()
    assert summaries[f"{FOLDER}/a.m3u8"].ordered and not summaries[f"{FOLDER}/d.m3u8"].ordered
    for size in (1, 3, 4, 7):
        monkeypatch.setattr(spans_module, "PAGE_SEGMENTS", size)
        whole, gaps, pages = walk(folder)
        assert pages > 1
        assert whole == one_page.spans
        assert gaps == one_page.gaps


def test_a_damaged_packed_list_is_read_from_s3_again(folder: Folder) -> None:
    folder.put("a.m3u8", playlist("a", 10, 2.0, T0), skip=(2,))
    before = folder.spans(start_ms=T0 + 3000, duration_ms=10_000)
    summary = folder.index.summaries()[f"{FOLDER}/a.m3u8"]
    assert summary.ordered and summary.packed  # read lazily next time...
    damaged = summary.etag.encode() + b"\0" + zlib.compress(b'[1]\n["x", 2]\n')
    folder.index.client.set(folder.index._blob_key(summary), damaged)  # ...from a damaged list
    after = folder.spans(start_ms=T0 + 3000, duration_ms=10_000)
    assert (
        (after.spans, after.gaps)
        == (before.spans, before.gaps)
        == (
            [(T0 + 3000, T0 + 4000), (T0 + 6000, T0 + 13_000)],
            [(T0 + 4000, T0 + 6000)],
        )
    )
