"""The archive index (fakeredis + moto in-process): which playlists a lookup reads, what it
caches, and that every change to the archive (a playlist replaced, appended to, deleted, listed
twice) or a lost index still gives exactly the segments a full parse of every playlist gives."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from scripts.samples import SampleSpec, generate_recording
from tasks.exports.spec import ErrorCode, S3Location
from tasks.exports.store import ExportJobStore
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.factories import export_spec
from tests.helpers import moto_buckets, upload_recording
from tests.media import frame_indices
from workers.archive import ranges
from workers.archive.index import ArchiveIndex, PlaylistSummary, recording_id
from workers.archive.playlists import PlaylistError, Segment, covering, merge_timelines, parse_playlist
from workers.archive.ranges import segments_for_range
from workers.errors import SegmentsArchived
from workers.jobs.export_attempt import process_export
from workers.jobs.export_pipeline import run_export
from workers.jobs.fencing import NO_JOB_FENCE

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR = 3_600_000
SOURCE = S3Location("archive", "us-east-1")
FOLDER = "rec/cam"
PDT_MS = 1_700_000_000_000  # where scripts/samples.py places a generated recording


def iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def playlist(name: str, count: int, seg_s: float, start_ms: float | None, ended: bool = True) -> str:
    """A media playlist of `count` segments `{name}/sNNNNN.ts`; placed at `start_ms` by
    PROGRAM-DATE-TIME, or on its own timeline from 0 when None."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{int(seg_s)}"]
    if start_ms is not None:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso(start_ms)}")
    for i in range(count):
        lines += [f"#EXTINF:{seg_s:.3f},", f"{name}/s{i:05d}.ts"]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def hourly(hour: int) -> str:
    return playlist(f"h{hour:04d}", 600, 6.0, T0 + hour * HOUR)  # ~20 KB: more than one head read


class Archive:
    """A recording folder in moto, the playlists' texts (for the full-parse oracle), a counter of
    GETs and an index on fakeredis."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.texts: dict[str, str] = {}
        self._parsed: dict[tuple[str, str], list[Segment]] = {}
        self.store = ObjectStore(Settings())
        self.gets: list[tuple[str, str]] = []
        self.store.client("us-east-1").meta.events.register(
            "provide-client-params.s3.GetObject",
            lambda params, **_: self.gets.append((params["Key"], params.get("Range", ""))),
        )
        self.redis = fakeredis.FakeRedis()
        self.index = self.new_index(self.redis)

    @staticmethod
    def new_index(client: redis.Redis | None) -> ArchiveIndex:
        return ArchiveIndex(client, recording_id("archive", "us-east-1", FOLDER), 3600, 4 * 1024 * 1024)

    def put(self, name: str, text: str) -> None:
        self.texts[f"{FOLDER}/{name}"] = text
        self.client.put_object(Bucket="archive", Key=f"{FOLDER}/{name}", Body=text.encode())

    def delete(self, name: str) -> None:
        del self.texts[f"{FOLDER}/{name}"]
        self.client.delete_object(Bucket="archive", Key=f"{FOLDER}/{name}")

    def lookup(self, start_ms: float, end_ms: float, index: ArchiveIndex | None = None) -> list[Segment]:
        self.gets.clear()
        return segments_for_range(self.store, SOURCE, FOLDER, start_ms, end_ms, index=index or self.index)

    def oracle(self, start_ms: float, end_ms: float) -> list[Segment]:
        """What parsing every playlist gives, as the service did before the index."""
        parsed = []
        for key, text in sorted(self.texts.items()):
            if (key, text) not in self._parsed:
                try:
                    self._parsed[key, text] = parse_playlist(text, key, FOLDER)
                except PlaylistError:
                    self._parsed[key, text] = []
            parsed.append(self._parsed[key, text])
        return covering(merge_timelines(parsed), start_ms, end_ms)

    def full_reads(self) -> list[str]:
        return [key for key, byte_range in self.gets if not byte_range]

    def head_reads(self) -> list[str]:
        return [key for key, byte_range in self.gets if byte_range]


@pytest.fixture
def archive() -> Iterator[Archive]:
    with moto_buckets("archive") as client:
        yield Archive(client)


@pytest.fixture
def two_days(archive: Archive) -> Archive:
    for hour in range(48):
        archive.put(f"h{hour:04d}.m3u8", hourly(hour))
    return archive


def test_a_cold_lookup_reads_a_few_heads_and_only_the_playlist_holding_the_range(two_days: Archive) -> None:
    start = T0 + 30 * HOUR + 600_000
    found = two_days.lookup(start, start + 10_000)
    assert found == two_days.oracle(start, start + 10_000)
    assert [s.key for s in found] == ["rec/cam/h0030/s00100.ts", "rec/cam/h0030/s00101.ts"]
    assert two_days.full_reads() == ["rec/cam/h0030.m3u8"]
    assert len(two_days.head_reads()) <= 12  # a binary search over 48, not 48 reads


def test_a_warm_lookup_reads_no_playlist(two_days: Archive) -> None:
    start = T0 + 30 * HOUR + 600_000
    two_days.lookup(start, start + 10_000)
    found = two_days.lookup(start + 60_000, start + 70_000)
    assert found == two_days.oracle(start + 60_000, start + 70_000)
    assert two_days.gets == []
    other = T0 + 7 * HOUR + 300_000  # another hour: a few more reads
    elsewhere = two_days.lookup(other, other + 5000)
    assert elsewhere == two_days.oracle(other, other + 5000) != []
    assert two_days.full_reads() == ["rec/cam/h0007.m3u8"]


def test_a_range_across_two_playlists_takes_both(two_days: Archive) -> None:
    start = T0 + 12 * HOUR - 8000
    found = two_days.lookup(start, start + 16_000)
    assert found == two_days.oracle(start, start + 16_000)
    assert {s.playlist for s in found} == {"rec/cam/h0011.m3u8", "rec/cam/h0012.m3u8"}


def test_a_replaced_playlist_is_read_again(two_days: Archive) -> None:
    start = T0 + 30 * HOUR + 600_000
    two_days.lookup(start, start + 10_000)
    two_days.put("h0030.m3u8", playlist("redo", 600, 6.0, T0 + 30 * HOUR))
    found = two_days.lookup(start, start + 10_000)
    assert found == two_days.oracle(start, start + 10_000)
    assert [s.key for s in found] == ["rec/cam/redo/s00100.ts", "rec/cam/redo/s00101.ts"]


def test_a_live_playlist_is_refreshed_when_appended_to(archive: Archive) -> None:
    for hour in range(5):
        archive.put(f"h{hour:04d}.m3u8", hourly(hour))
    archive.put("h0005.m3u8", playlist("h0005", 300, 6.0, T0 + 5 * HOUR, ended=False))
    later = T0 + 5 * HOUR + 333 * 6000  # past the 300 segments written so far
    assert archive.lookup(later, later + 6000) == []
    summary = archive.index.summaries()["rec/cam/h0005.m3u8"]
    assert (summary.complete, summary.ended, summary.segments) == (True, False, 300)
    archive.put("h0005.m3u8", playlist("h0005", 600, 6.0, T0 + 5 * HOUR))  # appended, then ended
    found = archive.lookup(later, later + 6000)
    assert (
        [s.key for s in found]
        == ["rec/cam/h0005/s00333.ts"]
        == [s.key for s in archive.oracle(later, later + 6000)]
    )
    assert archive.index.summaries()["rec/cam/h0005.m3u8"].ended


def test_a_deleted_playlist_leaves_the_index(two_days: Archive) -> None:
    start = T0 + 30 * HOUR + 600_000
    assert two_days.lookup(start, start + 10_000) != []
    two_days.delete("h0030.m3u8")
    assert two_days.lookup(start, start + 10_000) == []
    assert "rec/cam/h0030.m3u8" not in two_days.index.summaries()
    assert [k for k in two_days.redis.keys("resourced:archive:*:segments:*")] != []  # others stay


def test_a_segment_listed_twice_across_playlists_is_taken_once(two_days: Archive) -> None:
    two_days.put("h0030-copy.m3u8", hourly(30))
    two_days.put("h0031-overlap.m3u8", playlist("h0030", 700, 6.0, T0 + 30 * HOUR))  # runs into h0031
    start = T0 + 31 * HOUR - 10_000
    found = two_days.lookup(start, start + 20_000)
    # Which of the identical entries is kept (h0030.m3u8's or its copy's) follows the playlists'
    # LastModified, which moto stamps to the second: the same media either way, so the
    # comparison leaves out the playlist an entry came from and keeps everything else.
    assert [replace(s, playlist="") for s in found] == [
        replace(s, playlist="") for s in two_days.oracle(start, start + 20_000)
    ]
    assert len({s.identity for s in found}) == len(found)
    assert [s.key for s in found][:2] == ["rec/cam/h0030/s00598.ts", "rec/cam/h0030/s00599.ts"]


def test_playlists_without_program_date_time_are_read_whole(archive: Archive) -> None:
    for name in ("a", "b", "c"):
        archive.put(f"{name}.m3u8", playlist(name, 700, 2.0, None))
    found = archive.lookup(5000, 15_000)
    assert found == archive.oracle(5000, 15_000) != []
    assert sorted(archive.full_reads()) == ["rec/cam/a.m3u8", "rec/cam/b.m3u8", "rec/cam/c.m3u8"]


def test_the_index_lost_between_lookups_costs_a_rebuild(two_days: Archive) -> None:
    start = T0 + 40 * HOUR + 300_000
    first = two_days.lookup(start, start + 10_000)
    two_days.redis.flushall()
    assert two_days.lookup(start, start + 10_000) == first == two_days.oracle(start, start + 10_000)
    assert two_days.full_reads() == ["rec/cam/h0040.m3u8"]
    evicted = two_days.redis.keys("resourced:archive:*:segments:*")
    two_days.redis.delete(*evicted)  # summaries kept, packed lists evicted (maxmemory): still right
    assert two_days.lookup(start, start + 10_000) == first


def test_redis_down_is_a_slower_lookup_not_a_failure(two_days: Archive) -> None:
    dead = two_days.new_index(redis.Redis(port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)))
    start = T0 + 20 * HOUR + 1234
    assert two_days.lookup(start, start + 10_000, index=dead) == two_days.oracle(start, start + 10_000)


def test_a_playlist_larger_than_the_old_16_mib_cap_is_streamed(archive: Archive) -> None:
    name = "day/" + "x" * 100  # long URIs: 17 MiB of playlist in ~140k entries
    text = playlist(name, 140_000, 2.0, T0)
    assert len(text) > 16 * 1024 * 1024
    archive.put("day.m3u8", text)
    late = T0 + 139_990 * 2000
    found = archive.lookup(late, late + 4000)
    assert [s.key for s in found] == [f"rec/cam/{name}/s139990.ts", f"rec/cam/{name}/s139991.ts"]
    summary = archive.index.summaries()["rec/cam/day.m3u8"]
    assert (summary.segments, summary.end_ms, summary.packed) == (140_000, T0 + 280_000_000, True)
    assert archive.lookup(T0 + 2000, T0 + 4000)[0].key == f"rec/cam/{name}/s00001.ts"
    assert archive.gets == []  # the second lookup came from the index


def test_a_playlist_over_the_cache_limit_is_not_cached_but_still_used(archive: Archive) -> None:
    archive.put("h0000.m3u8", hourly(0))
    small = ArchiveIndex(archive.redis, "tiny", 3600, 512)
    assert archive.lookup(T0, T0 + 6000, index=small)[0].key == "rec/cam/h0000/s00000.ts"
    assert not small.summaries()["rec/cam/h0000.m3u8"].packed
    assert archive.lookup(T0 + 6000, T0 + 12_000, index=small)[0].key == "rec/cam/h0000/s00001.ts"
    assert archive.full_reads() == ["rec/cam/h0000.m3u8"]  # streamed from S3 again


def test_a_master_playlist_and_an_empty_one_in_the_folder_are_skipped(two_days: Archive) -> None:
    two_days.put("index.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nh0001.m3u8\n")
    two_days.put("h0048.m3u8", "")
    start = T0 + 47 * HOUR + 5000
    assert two_days.lookup(start, start + 6000) == two_days.oracle(start, start + 6000) != []
    assert two_days.index.summaries()["rec/cam/index.m3u8"].error
    assert two_days.index.summaries()["rec/cam/h0048.m3u8"].error == "empty playlist"


def test_an_index_flushed_mid_export_still_gives_the_exact_clip(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis flushed between indexing and cutting, then again before a second export."""
    upload_recording(
        archive.client, "archive", FOLDER, generate_recording(tmp_path / "rec", SampleSpec(seconds=6))
    )
    settings = Settings(work_dir=str(tmp_path), redis_url="redis://index.test:6379/0")
    monkeypatch.setitem(ranges._clients, settings.redis_url, archive.redis)
    archive.client.create_bucket(Bucket="exports")
    flushed: list[str] = []

    def flush_once_cutting_starts(step: str, fraction: float) -> None:
        if step != "indexing" and not flushed:
            assert archive.redis.keys("resourced:archive:*") != []  # the export did index
            archive.redis.flushall()
            flushed.append(step)

    for start, name in ((PDT_MS + 1000, "one.mp4"), (PDT_MS + 2500, "two.mp4")):
        spec = export_spec(source=SOURCE, live_path=FOLDER, start_ms=start, duration_ms=2000, video_name=name)
        result = run_export(
            spec, ObjectStore(settings), settings, flush_once_cutting_starts, fence=NO_JOB_FENCE
        )
        assert (result.exported_ms, result.lack_ms) == (2000, 0)
        archive.client.download_file("exports", f"out/{name}", str(tmp_path / name))
        first, end = (start - PDT_MS) * 25 // 1000, -(-(start - PDT_MS + 2000) * 25 // 1000)
        assert frame_indices(tmp_path / name) == list(range(first, end))  # the frames on screen
        flushed.clear()  # and flushed again during the second export


def test_a_playlist_rewritten_out_of_time_order_is_found_cold_and_warm(two_days: Archive) -> None:
    start = T0 + 30 * HOUR + 600_000
    two_days.lookup(start, start + 10_000)  # warm for this range
    time.sleep(1.1)  # LastModified has a one-second grain: now h0030 is the newest object
    two_days.put("h0030.m3u8", playlist("redo", 600, 6.0, T0 + 30 * HOUR))
    expected = ["rec/cam/redo/s00100.ts", "rec/cam/redo/s00101.ts"]
    assert [s.key for s in two_days.lookup(start, start + 10_000)] == expected  # warm for the range
    assert "rec/cam/h0030.m3u8" in two_days.head_reads() and len(two_days.head_reads()) <= 12
    cold = two_days.new_index(fakeredis.FakeRedis())  # cold: last in LastModified order, found by name
    assert [s.key for s in two_days.lookup(start, start + 10_000, index=cold)] == expected


def test_random_ranges_match_a_full_parse_cold_and_warm(archive: Archive) -> None:
    """Hours missing, a short hour, a copy of one hour: any range, any index state, the same
    segments as parsing every playlist."""
    for hour in [h for h in range(30) if h not in (7, 8, 19)]:
        archive.put(
            f"h{hour:04d}.m3u8", hourly(hour) if hour != 12 else playlist("h0012", 100, 6.0, T0 + 12 * HOUR)
        )
    archive.put("h0020-copy.m3u8", hourly(20))
    rng = random.Random(15)
    for _ in range(25):
        start = T0 + rng.randrange(-HOUR, 31 * HOUR)
        end = start + rng.choice([2000, 10_000, 600_000, 2 * HOUR])
        expected = archive.oracle(start, end)
        assert archive.lookup(start, end) == expected  # the index warming up as it goes
        assert archive.lookup(start, end, index=archive.new_index(fakeredis.FakeRedis())) == expected


def archive_in_glacier(archive: Archive, name: str) -> str:
    """Transition a playlist to GLACIER in place, as a lifecycle rule would (its ETag unchanged)."""
    key = f"{FOLDER}/{name}"
    archive.client.copy_object(
        Bucket="archive",
        Key=key,
        CopySource={"Bucket": "archive", "Key": key},
        StorageClass="GLACIER",
        MetadataDirective="COPY",
    )
    return key


def test_an_archived_playlist_is_named_for_restore_when_its_head_is_read(archive: Archive) -> None:
    archive.put("a.m3u8", playlist("a", 10, 6.0, T0))  # small: its head read is the whole playlist
    key = archive_in_glacier(archive, "a.m3u8")
    with pytest.raises(SegmentsArchived) as raised:
        archive.lookup(T0, T0 + 10_000)
    assert raised.value.keys == [key] and raised.value.code is ErrorCode.RESTORING


def test_a_playlist_archived_after_its_head_was_indexed_is_named_for_restore(two_days: Archive) -> None:
    start = T0 + 30 * HOUR + 600_000
    two_days.lookup(start, start + 10_000)
    only_heads = sorted(set(two_days.head_reads()) - set(two_days.full_reads()))
    key = only_heads[0]  # indexed from its head alone: the next lookup in it reads it whole
    hour = int(key.rsplit("/h", 1)[1][:4])
    archive_in_glacier(two_days, key.rsplit("/", 1)[1])
    with pytest.raises(SegmentsArchived) as raised:
        two_days.lookup(T0 + hour * HOUR + 300_000, T0 + hour * HOUR + 310_000)
    assert raised.value.keys == [key]
    # The full read met the archive, not a head read. (A guessed order may also take a neighbour
    # whole: the copy into GLACIER made this playlist the newest by LastModified.)
    assert key in two_days.full_reads() and key not in two_days.head_reads()


def test_an_export_over_an_archived_playlist_parks_and_restores_it(archive: Archive, tmp_path: Path) -> None:
    """ErrorCode 8 with a restore under way for the playlist, not ErrorCode 6 'internal error'."""
    archive.put("a.m3u8", playlist("a", 10, 6.0, T0))
    key = archive_in_glacier(archive, "a.m3u8")
    jobs = ExportJobStore(fakeredis.FakeRedis(), job_ttl_s=3600)
    spec = export_spec(source=SOURCE, live_path=FOLDER, start_ms=T0, duration_ms=10_000)
    token = jobs.admit(spec, "export.copy", 10, 10).detail
    settings = Settings(work_dir=str(tmp_path))
    outcome = process_export(spec.job_id, token, jobs, ObjectStore(settings), settings, "w1")
    assert (outcome.state, outcome.error_code) == ("restoring", ErrorCode.RESTORING)
    assert "Restore" in archive.client.head_object(Bucket="archive", Key=key)  # RestoreObject was sent


def test_a_range_near_the_end_a_head_estimates_also_reads_that_playlist(two_days: Archive) -> None:
    """A head-only playlist may reach a little past where its head extrapolates (a margin): a
    range just after it reads it whole once, and is then judged exactly."""
    start = T0 + 12 * HOUR + 10_000
    assert two_days.lookup(start, start + 10_000) == two_days.oracle(start, start + 10_000) != []
    two_days.lookup(start, start + 10_000)
    assert two_days.gets == []


def test_a_long_playlist_that_started_before_its_neighbours_is_found(archive: Archive) -> None:
    """A day-long playlist beside hourly ones, the hour itself missing: the day's head says it
    may reach the range, so it is read whole."""
    for hour in (0, 1, 2, 4, 5):
        archive.put(f"h{hour:04d}.m3u8", hourly(hour))
    archive.put("day.m3u8", playlist("day", 6 * 600, 6.0, T0))  # six hours, 0..6
    start = T0 + 3 * HOUR + 600_000
    expected = archive.oracle(start, start + 10_000)
    assert {s.playlist for s in expected} == {"rec/cam/day.m3u8"}
    assert archive.lookup(start, start + 10_000) == expected
    assert archive.lookup(start, start + 10_000, index=archive.new_index(fakeredis.FakeRedis())) == expected


def test_playlists_named_out_of_time_order_and_copied_at_once_still_match_a_full_parse(
    archive: Archive,
) -> None:
    """A bulk copy: names say nothing of time (UUIDs), LastModified is the same second. The heads
    read contradict both guessed orders, so every head is read once and the exact order used."""
    rng = random.Random(11)
    names = {hour: f"{rng.getrandbits(64):016x}.m3u8" for hour in range(24)}  # more than 8: guessed
    for hour, name in names.items():
        archive.put(name, hourly(hour))
    for _ in range(5):
        start = T0 + rng.randrange(0, 24 * HOUR)
        cold = archive.new_index(fakeredis.FakeRedis())
        expected = archive.oracle(start, start + 10_000)
        assert expected != []
        assert archive.lookup(start, start + 10_000, index=cold) == expected
        assert archive.lookup(start, start + 10_000) == expected


def test_a_playlist_without_program_date_time_does_not_make_a_cold_lookup_read_everything(
    two_days: Archive,
) -> None:
    two_days.put("zz-preview.m3u8", playlist("preview", 700, 2.0, None))
    start = T0 + 47 * HOUR + 300_000
    assert two_days.lookup(start, start + 10_000) == two_days.oracle(start, start + 10_000) != []
    assert two_days.full_reads() == ["rec/cam/h0047.m3u8"]
    assert len(two_days.head_reads()) <= 14
    assert two_days.lookup(5000, 9000) == two_days.oracle(5000, 9000) != []  # its own timeline


class FlushingIndex(ArchiveIndex):
    """An index whose Redis is flushed in the middle of a lookup: after the summaries were read,
    just before the first packed list is."""

    def packed(self, summary: PlaylistSummary) -> bytes | None:
        if self.client is not None:
            self.client.flushall()
        return super().packed(summary)


def test_an_index_flushed_during_a_lookup_gives_the_same_segments(two_days: Archive) -> None:
    start = T0 + 30 * HOUR + 600_000
    expected = two_days.lookup(start, start + 10_000)
    flushing = FlushingIndex(two_days.redis, two_days.index.recording, 3600, 4 * 1024 * 1024)
    assert (
        two_days.lookup(start, start + 10_000, index=flushing)
        == expected
        == two_days.oracle(start, start + 10_000)
    )
    assert two_days.full_reads() == ["rec/cam/h0030.m3u8"]  # its list was gone: read again


def test_a_damaged_index_entry_is_a_miss(two_days: Archive) -> None:
    start = T0 + 30 * HOUR + 600_000
    expected = two_days.lookup(start, start + 10_000)
    summary = two_days.index.summaries()["rec/cam/h0030.m3u8"]
    (blob_key,) = two_days.redis.keys("resourced:archive:*:segments:*")
    two_days.redis.set(blob_key, summary.etag.encode() + b"\0not zlib at all")
    assert two_days.lookup(start, start + 10_000) == expected
    assert two_days.full_reads() == ["rec/cam/h0030.m3u8"]


def test_a_live_playlist_keeps_one_packed_list_however_often_it_changes(archive: Archive) -> None:
    archive.put("live.m3u8", playlist("live", 600, 6.0, T0, ended=False))
    stale = archive.new_index(archive.redis)
    for count in (600, 700, 800):
        archive.put("live.m3u8", playlist("live", count, 6.0, T0, ended=False))
        end = T0 + count * 6000
        assert archive.lookup(end - 6000, end)[0].key == f"rec/cam/live/s{count - 1:05d}.ts"
    assert stale.recording == archive.index.recording
    assert len(archive.redis.keys("resourced:archive:*:segments:*")) == 1


@pytest.mark.parametrize("name", ["zz-day.m3u8", "a-day.m3u8", "h0005-day.m3u8", "h0019x.m3u8"])
def test_a_cold_lookup_over_many_new_playlists_finds_a_long_one_anywhere_in_either_order(
    archive: Archive, name: str
) -> None:
    """More than 8 playlists the index does not know, copied at once (one LastModified), and a
    day-long playlist among hourly ones whose name puts it anywhere in natural order: the search
    in either guessed order never reads its head, yet it alone holds the range."""
    for hour in range(24):
        if hour != 10:
            archive.put(f"h{hour:04d}.m3u8", hourly(hour))
    archive.put(name, playlist("day", 24 * 600, 6.0, T0))
    start = T0 + 10 * HOUR + 1_200_000
    expected = archive.oracle(start, start + 10_000)
    assert {s.playlist for s in expected} == {f"rec/cam/{name}"}
    assert archive.lookup(start, start + 10_000) == expected  # cold
    assert len(archive.head_reads()) <= 16  # not a head per playlist
    assert archive.lookup(start, start + 10_000) == expected  # warm
    assert archive.gets == []
