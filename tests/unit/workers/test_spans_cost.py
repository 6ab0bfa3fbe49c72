"""The cost of one recording-spans page does not grow with the archive: a page of 200 hourly
playlists makes the same Redis and S3 requests as the whole of a 1-minute recording, lists a
slice of the segment folder no longer than a page, and decodes about a page of entries. Counted,
not timed (the timing is `make bench-archive`): moto in-process, fakeredis."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest
import redis

from tasks.platform import keys
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.helpers import moto_buckets
from tests.unit.workers.test_spans import SOURCE, T0, playlist
from workers.archive import packing
from workers.archive.index import ArchiveIndex, recording_id
from workers.archive.kept_listing import PROBE_KEYS, Kept, decode, encode
from workers.archive.spans import PAGE_SEGMENTS, SpansPage, recording_spans

HOUR_MS = 3600 * 1000
HOURS = 200
SEGMENT_S = 6.0  # 600 entries an hour: far more than a page, light enough to upload 200 hours
MEASURED_HOUR = 150


@dataclass
class Costs:
    """What one page asked of Redis and S3, and how much work came back."""

    redis: int = 0
    s3: Counter[str] = field(default_factory=Counter)
    keys_listed: int = 0
    entries_decoded: int = 0


class Meter:
    """Counts Redis commands (pipelines as one request), S3 operations, the keys the S3 LISTs
    returned and the packed entries decoded, for the page run under `measure`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store: ObjectStore, client: Any) -> None:
        self.costs = Costs()
        events = store.client("us-east-1").meta.events
        events.register("before-call.s3", self._s3_call)
        events.register("after-call.s3.ListObjectsV2", self._listed)
        command, execute, decode = client.execute_command, redis.client.Pipeline.execute, packing._segment

        def counted_command(*args: Any, **kwargs: Any) -> Any:
            self.costs.redis += 1
            return command(*args, **kwargs)

        def counted_execute(pipe: Any, *args: Any, **kwargs: Any) -> Any:
            self.costs.redis += 1
            return execute(pipe, *args, **kwargs)

        def counted_decode(*args: Any) -> Any:
            self.costs.entries_decoded += 1
            return decode(*args)

        monkeypatch.setattr(client, "execute_command", counted_command)
        monkeypatch.setattr(redis.client.Pipeline, "execute", counted_execute)
        monkeypatch.setattr(packing, "_segment", counted_decode)

    def _s3_call(self, model: Any, **_: Any) -> None:
        self.costs.s3[model.name] += 1

    def _listed(self, parsed: dict[str, Any], **_: Any) -> None:
        self.costs.keys_listed += len(parsed.get("Contents", []))

    def measure(self, page: Any) -> tuple[SpansPage, Costs]:
        self.costs = Costs()
        answer = page()
        return answer, self.costs


@pytest.fixture
def s3() -> Iterator[Any]:
    with moto_buckets("archive") as client:
        yield client


def put_recording(s3: Any, folder: str, hours: list[tuple[str, int, float]], segments_of: str) -> None:
    """Playlists (name, entries, start); segment objects (one byte) only for `segments_of`'s
    first 3 pages: the rest of the archive is never listed by the pages measured."""
    for name, count, start in hours:
        text = playlist(name, count, SEGMENT_S if count > 30 else 2.0, start)
        s3.put_object(Bucket="archive", Key=f"{folder}/{name}.m3u8", Body=text.encode())
        if name == segments_of:
            for line in [x for x in text.splitlines() if x.endswith(".ts")][: 3 * PAGE_SEGMENTS]:
                s3.put_object(Bucket="archive", Key=f"{folder}/{line}", Body=b"x")


@dataclass
class Archives:
    """The 1-minute recording and the 200 hourly playlists, both known to the index."""

    minute: Callable[..., SpansPage]
    month: Callable[..., SpansPage]
    meter: Meter
    client: Any
    hour: int


@pytest.fixture
def archives(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Archives:
    client = fakeredis.FakeRedis()
    store = ObjectStore(Settings())

    def index(folder: str) -> ArchiveIndex:
        return ArchiveIndex(client, recording_id("archive", "us-east-1", folder), 3600, 1 << 22)

    put_recording(s3, "minute", [("m", 30, T0)], "m")
    archive = [(f"h{h:03d}", int(3600 / SEGMENT_S), T0 + h * HOUR_MS) for h in range(HOURS)]
    put_recording(s3, "month", archive, f"h{MEASURED_HOUR:03d}")
    hour = T0 + MEASURED_HOUR * HOUR_MS

    def minute(cursor: str = "") -> SpansPage:
        return recording_spans(store, SOURCE, "minute", cursor=cursor, index=index("minute"))

    def month(cursor: str = "") -> SpansPage:
        return recording_spans(store, SOURCE, "month", hour, HOUR_MS, cursor, index=index("month"))

    meter = Meter(monkeypatch, store, client)
    minute(), month()  # the index learns both recordings (heads, the hour read whole)
    return Archives(minute, month, meter, client, hour)


def test_a_page_of_200_hourly_playlists_costs_what_a_1_minute_recording_does(archives: Archives) -> None:
    minute, month, meter, hour = archives.minute, archives.month, archives.meter, archives.hour
    short, short_costs = meter.measure(minute)
    first, first_costs = meter.measure(month)
    second, second_costs = meter.measure(lambda: month(first.cursor))

    assert short.cursor == "" and short.spans == [(T0, T0 + 60_000)]  # the whole recording
    assert first.spans == [(hour, hour + PAGE_SEGMENTS * 6000)]
    assert second.spans == [(hour + PAGE_SEGMENTS * 6000, hour + 2 * PAGE_SEGMENTS * 6000)]
    for costs in (first_costs, second_costs):
        assert costs.redis == short_costs.redis  # the same round trips: no per-playlist request
        assert costs.s3 == short_costs.s3 == {"ListObjectsV2": 1}  # one slice LIST, no GET
        # The work those requests carry is a page's, not the hour's (600) or the archive's.
        assert costs.keys_listed <= PAGE_SEGMENTS + 8
        assert costs.entries_decoded <= PAGE_SEGMENTS + 1  # the page, and the one past its cut
    assert short_costs.keys_listed == 30


def test_a_later_walks_first_page_costs_what_a_1_minute_recording_does(archives: Archives) -> None:
    """Minutes after the last walk the kept folder listing is stale: the page probes the
    folder's end (one small LIST) instead of listing 200 playlists, like the 1-minute one."""
    for name in archives.client.scan_iter(keys.archive_listing("*")):
        kept = decode(archives.client.get(name))
        archives.client.set(name, encode(Kept(kept.listed_at - 600, kept.rows)))
    short, short_costs = archives.meter.measure(archives.minute)
    first, first_costs = archives.meter.measure(archives.month)

    assert short.spans == [(T0, T0 + 60_000)]
    assert first.spans == [(archives.hour, archives.hour + PAGE_SEGMENTS * 6000)]
    assert first_costs.redis == short_costs.redis
    assert first_costs.s3 == short_costs.s3 == {"ListObjectsV2": 2}  # the probe, the slice
    assert first_costs.keys_listed <= PAGE_SEGMENTS + 8 + PROBE_KEYS  # not the 200 playlists
    assert first_costs.entries_decoded <= PAGE_SEGMENTS + 1
