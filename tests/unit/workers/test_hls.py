"""Playlists onto the timeline; hostile segment URIs refused."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest

from workers.archive.hls_parser import MediaPlaylistReader, read_segments
from workers.archive.packing import SegmentPacker, unpack
from workers.archive.playlists import (
    ByteRange,
    PlaylistError,
    Segment,
    covering,
    merge_timelines,
    parse_playlist,
    resolve_segment_key,
)

PDT = """#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00.000Z
#EXTINF:2.0,
a.ts
#EXTINF:2.0,
a2.ts
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:10.000Z
#EXTINF:2.0,
sub/b.ts
#EXT-X-ENDLIST
"""
EPOCH_2024 = 1_704_067_200_000


def test_program_date_time_places_segments_and_carries_forward() -> None:
    segments = parse_playlist(PDT, "root/cam/index.m3u8", "root/cam")
    assert [s.key for s in segments] == ["root/cam/a.ts", "root/cam/a2.ts", "root/cam/sub/b.ts"]
    assert [s.start_ms for s in segments] == [EPOCH_2024, EPOCH_2024 + 2000, EPOCH_2024 + 10_000]
    assert [s.discontinuity for s in segments] == [False, False, True]


def test_without_program_date_time_the_timeline_starts_at_zero() -> None:
    text = "#EXTM3U\n#EXTINF:1.5,\na.ts\n#EXTINF:2.5,\nb.ts\n"
    assert [s.start_ms for s in parse_playlist(text, "r/x.m3u8", "r")] == [0, 1500]


@pytest.mark.parametrize(
    "uri",
    [
        "../other/a.ts",
        "../../etc/passwd",
        "/abs.ts",
        "http://evil.example/a.ts",
        "s3://b/k.ts",
        "a\\b.ts",
        "a.ts?x=1",
    ],
)
def test_segment_uris_cannot_leave_the_recording(uri: str) -> None:
    with pytest.raises(PlaylistError):
        resolve_segment_key("root/cam/index.m3u8", uri, "root/cam")


def test_not_a_playlist_is_refused() -> None:
    with pytest.raises(PlaylistError):
        parse_playlist("<html>", "r/x.m3u8", "r")
    master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlow.m3u8\n"
    with pytest.raises(PlaylistError):
        parse_playlist(master, "r/x.m3u8", "r")


def test_covering_picks_only_overlapping_segments_and_skips_duplicates() -> None:
    one = parse_playlist(PDT, "root/cam/index.m3u8", "root/cam")
    two = parse_playlist(PDT, "root/cam/copy.m3u8", "root/cam")  # lists the same keys again
    merged = merge_timelines([one, two])
    assert len(merged) == 3
    chosen = covering(merged, EPOCH_2024 + 2500, EPOCH_2024 + 10_500)
    assert [s.key for s in chosen] == ["root/cam/a2.ts", "root/cam/sub/b.ts"]
    assert covering(merged, EPOCH_2024 + 4000, EPOCH_2024 + 10_000) == []


SINGLE_FILE = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-MAP:URI="init.mp4",BYTERANGE="700@0"
#EXTINF:2.0,
#EXT-X-BYTERANGE:1000@700
all.mp4
#EXTINF:2.0,
#EXT-X-BYTERANGE:1200
all.mp4
#EXTINF:2.0,
sub/a%20b.m4s
#EXTINF:2.0,
https://cdn.example/elsewhere.m4s
#EXTINF:2.0,
last.m4s
#EXT-X-ENDLIST
"""


def test_byte_ranges_follow_on_and_init_sections_travel_with_each_segment() -> None:
    segments = parse_playlist(SINGLE_FILE, "r/cam/index.m3u8", "r/cam")
    first, second = segments[0], segments[1]
    assert (first.key, first.byte_range) == ("r/cam/all.mp4", ByteRange(700, 1000))
    assert (second.key, second.byte_range) == ("r/cam/all.mp4", ByteRange(1700, 1200))
    assert {s.init_key for s in segments} == {"r/cam/init.mp4"}
    assert first.init_range == ByteRange(0, 700)
    assert first.identity != second.identity
    assert len(merge_timelines([segments, segments])) == len(segments)


def test_percent_encoded_uris_name_the_decoded_object() -> None:
    segments = parse_playlist(SINGLE_FILE, "r/cam/index.m3u8", "r/cam")
    assert segments[2].key == "r/cam/sub/a b.m4s"
    with pytest.raises(PlaylistError):
        resolve_segment_key("r/cam/index.m3u8", "%2e%2e/other/a.ts", "r/cam")


def test_an_absolute_uri_is_one_refused_entry_not_a_lost_playlist() -> None:
    segments = parse_playlist(SINGLE_FILE, "r/cam/index.m3u8", "r/cam")
    assert [bool(s.refused) for s in segments] == [False, False, False, True, False]
    assert segments[4].start_ms == 8000  # the refused entry still occupies its time
    assert "relative" in segments[3].refused


def test_packed_segments_come_back_exactly() -> None:
    segments = parse_playlist(SINGLE_FILE, "r/cam/index.m3u8", "r/cam") + parse_playlist(
        PDT, "r/cam/index.m3u8", "r/cam"
    )
    packer = SegmentPacker(1024 * 1024)
    for segment in segments:
        packer.add(segment)
    packed = packer.result()
    assert packed is not None
    assert list(unpack(packed, "r/cam/index.m3u8")) == segments


def _day_of_lines(count: int) -> Iterator[str]:
    yield "#EXTM3U"
    yield "#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00.000Z"
    for i in range(count):
        yield "#EXTINF:2.000,"
        yield f"seg/{i:08d}.ts"


def _peak_bytes(count: int) -> tuple[int, list[Segment]]:
    reader = MediaPlaylistReader("r/cam/day.m3u8", "r/cam")
    packer = SegmentPacker(64 * 1024)  # over this, the list is not cached: memory stays flat
    tracemalloc.start()
    try:
        wanted = []
        for segment in read_segments(_day_of_lines(count), reader):
            packer.add(segment)
            if segment.overlaps(EPOCH_2024 + 4000, EPOCH_2024 + 8000):
                wanted.append(segment)
        packer.result()
        return tracemalloc.get_traced_memory()[1], wanted
    finally:
        tracemalloc.stop()


def test_reading_a_playlist_takes_memory_independent_of_its_length() -> None:
    _, small = _peak_bytes(2_000)
    big_peak, big = _peak_bytes(40_000)  # ~1.2 MB of playlist; its segments would take ~15 MB
    assert (
        [s.key for s in big] == [s.key for s in small] == ["r/cam/seg/00000002.ts", "r/cam/seg/00000003.ts"]
    )
    assert big_peak < 3 * 64 * 1024  # the packing limit and a few lines, whatever the length


def test_stats_of_a_streamed_playlist() -> None:
    reader = MediaPlaylistReader("r/cam/index.m3u8", "r/cam")
    assert len(list(read_segments(PDT.splitlines(), reader))) == 3
    stats = reader.stats
    assert (stats.segments, stats.first_ms, stats.end_ms) == (3, EPOCH_2024, EPOCH_2024 + 12_000)
    assert stats.absolute and stats.ended


def overlapping_playlists() -> tuple[list[Segment], list[Segment]]:
    """Hour 1 ends at 10 s; hour 2 (a restarted recorder) starts at 9 s, re-sending one second."""
    first = parse_playlist(
        PDT.replace("a2.ts", "a2.ts\n#EXTINF:2.0,\na3.ts").replace(
            "2024-01-01T00:00:10", "2024-01-01T00:00:08"
        ),
        "root/cam/h1.m3u8",
        "root/cam",
    )
    second = parse_playlist(
        "#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:09.000Z\n#EXTINF:2.0,\nb0.ts\n#EXTINF:2.0,\nb1.ts\n",
        "root/cam/h2.m3u8",
        "root/cam",
    )
    return first, second


def test_an_overlapping_segment_hands_over_where_the_next_one_starts() -> None:
    first, second = overlapping_playlists()
    assert [s.end_ms - EPOCH_2024 for s in first] == [2000, 4000, 6000, 10_000]
    chosen = covering(merge_timelines([first, second]), EPOCH_2024, EPOCH_2024 + 13_000)
    assert [s.key.rsplit("/", 1)[1] for s in chosen] == ["a.ts", "a2.ts", "a3.ts", "b.ts", "b0.ts", "b1.ts"]
    assert [None if s.until_ms is None else s.until_ms - EPOCH_2024 for s in chosen] == [
        None,
        None,
        None,
        9000,  # sub/b.ts [8 s, 10 s) gives its last second to b0.ts
        None,
        None,
    ]


def test_back_to_back_segments_and_pdt_jitter_hand_nothing_over() -> None:
    segments = parse_playlist(PDT, "root/cam/index.m3u8", "root/cam")
    jittered = [*segments, Segment("root/cam/c.ts", segments[-1].end_ms - 3, 2000, False, "root/cam/j.m3u8")]
    assert all(s.until_ms is None for s in covering(jittered, EPOCH_2024, EPOCH_2024 + 20_000))


def test_an_early_pdt_inside_one_playlist_is_jitter_unless_a_discontinuity_says_otherwise() -> None:
    """A camera stamping each segment with its wall clock, 50 ms early: the stream goes on (same
    playlist, no discontinuity), so nothing of the earlier segment is left out; after a
    discontinuity (a restarted encoder inside one playlist) the overlap is real."""
    text = """#EXTM3U
#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00.000Z
#EXTINF:2.0,
a.ts
#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:01.950Z
#EXTINF:2.0,
b.ts
#EXT-X-DISCONTINUITY
#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:03.000Z
#EXTINF:2.0,
c.ts
"""
    chosen = covering(parse_playlist(text, "r/index.m3u8", "r"), EPOCH_2024, EPOCH_2024 + 6000)
    assert [None if s.until_ms is None else s.until_ms - EPOCH_2024 for s in chosen] == [None, 3000, None]


def test_a_refused_entry_takes_nothing_over() -> None:
    a = Segment("r/a.ts", 0, 2000, False, "r/1.m3u8")
    refused = Segment("https://cdn/x.ts", 1000, 2000, False, "r/2.m3u8", refused="not relative")
    b = Segment("r/b.ts", 1500, 2000, False, "r/3.m3u8")
    chosen = covering([a, refused, b], 0, 4000)
    assert [(s.key, s.until_ms) for s in chosen] == [
        ("r/a.ts", 1500),
        ("https://cdn/x.ts", None),
        ("r/b.ts", None),
    ]
