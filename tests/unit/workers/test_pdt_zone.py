"""PROGRAM-DATE-TIME without a zone offset: read in RESOURCED_PDT_ZONE, never in the host's zone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import fakeredis
import pytest

from tasks.exports.spec import S3Location
from tasks.platform.settings import ConfigError, Settings
from tasks.storage import ObjectStore
from tests.helpers import moto_buckets
from workers.archive.hls_parser import program_date_time_ms
from workers.archive.index import ArchiveIndex, recording_id
from workers.archive.playlists import PlaylistError, parse_playlist
from workers.archive.ranges import segments_for_range

MIDNIGHT_UTC = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SHANGHAI = 8 * 3_600_000  # UTC+8, no daylight saving


def bare(pdt: str) -> str:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:{pdt}\n#EXTINF:2.0,\na.ts\n"


@pytest.fixture
def host_in_shanghai(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone is UTC+8, as on a worker started with TZ=Asia/Shanghai."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_bare_program_date_time_is_utc_by_default_whatever_the_host_zone(host_in_shanghai: None) -> None:
    (segment,) = parse_playlist(bare("2026-01-01T00:00:00.000"), "r/index.m3u8", "r")
    assert segment.start_ms == MIDNIGHT_UTC


def test_a_bare_program_date_time_is_read_in_the_configured_zone(host_in_shanghai: None) -> None:
    zone = Settings.from_env({"RESOURCED_PDT_ZONE": "Asia/Shanghai"}).pdt_tzinfo
    (segment,) = parse_playlist(bare("2026-01-01T00:00:00.000"), "r/index.m3u8", "r", zone)
    assert segment.start_ms == MIDNIGHT_UTC - SHANGHAI


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00.000Z", MIDNIGHT_UTC),
        ("2026-01-01T08:00:00.000+08:00", MIDNIGHT_UTC),
        ("2026-01-01T00:00:00.250+0000", MIDNIGHT_UTC + 250),
        ("2025-12-31T19:00:00-05:00", MIDNIGHT_UTC),
    ],
)
def test_an_explicit_offset_wins_over_the_configured_zone(
    value: str, expected: int, host_in_shanghai: None
) -> None:
    assert program_date_time_ms(value, ZoneInfo("America/New_York")) == expected


def test_a_bare_value_follows_daylight_saving_of_its_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert program_date_time_ms("2026-01-01T01:00:00", paris) == MIDNIGHT_UTC  # CET, UTC+1
    summer = program_date_time_ms("2026-07-01T02:00:00", paris)  # CEST, UTC+2
    assert summer == program_date_time_ms("2026-07-01T00:00:00Z", paris)


def test_a_bad_program_date_time_refuses_the_playlist() -> None:
    with pytest.raises(PlaylistError, match="PROGRAM-DATE-TIME"):
        parse_playlist(bare("yesterday"), "r/index.m3u8", "r")


def test_settings_default_to_utc_and_refuse_an_unknown_zone() -> None:
    assert Settings.from_env({}).pdt_zone == "UTC"
    assert Settings.from_env({"RESOURCED_PDT_ZONE": " Asia/Shanghai "}).pdt_zone == "Asia/Shanghai"
    for wrong in ("Mars/Olympus_Mons", "../../etc/passwd", "UTC+8", "localtime"):
        with pytest.raises(ConfigError, match="RESOURCED_PDT_ZONE"):
            Settings.from_env({"RESOURCED_PDT_ZONE": wrong})


def test_a_lookup_reads_bare_values_in_the_settings_zone(host_in_shanghai: None) -> None:
    """Through the archive lookup (head read and full read): the zone travels from settings."""
    text = bare("2026-01-01T08:00:00.000") + "#EXT-X-ENDLIST\n"
    source = S3Location("archive", "us-east-1")
    with moto_buckets("archive") as client:
        client.put_object(Bucket="archive", Key="rec/cam/index.m3u8", Body=text.encode())
        for zone, start in (("UTC", MIDNIGHT_UTC + SHANGHAI), ("Asia/Shanghai", MIDNIGHT_UTC)):
            settings = Settings(pdt_zone=zone)
            index = ArchiveIndex(
                fakeredis.FakeRedis(), recording_id("archive", "us-east-1", "rec/cam", zone), 60, 1 << 20
            )
            found = segments_for_range(
                ObjectStore(settings), source, "rec/cam", start, start + 1000, index=index
            )
            assert [s.start_ms for s in found] == [start]


def test_the_index_of_one_zone_is_not_reused_under_another() -> None:
    assert recording_id("b", None, "p") == recording_id("b", None, "p", "UTC")
    assert recording_id("b", None, "p", "Asia/Shanghai") != recording_id("b", None, "p")
