"""Prefetch against S3 (moto in-process): byte-range entries are read with ranged GETs, each
byte once, and an fMP4 initialization section once per export however many segments use it."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tasks.exports.spec import S3Location
from tasks.platform.settings import Settings
from tasks.storage import ObjectStore
from tests.helpers import moto_buckets
from tests.recorders import BY_NAME, record
from workers.archive.playlists import parse_playlist
from workers.transfer.prefetch import prefetch


class CountingStore(ObjectStore):
    """The real store, counting what it is asked to read."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.reads: list[tuple[str, tuple[int, int] | None]] = []

    def download(
        self,
        bucket: str,
        key: str,
        path: Path,
        max_bytes: int,
        region: str | None = None,
        byte_range: tuple[int, int] | None = None,
        append: bool = False,
        refuse_meta: str | None = None,
    ) -> int:
        self.reads.append((key, byte_range))
        return super().download(bucket, key, path, max_bytes, region, byte_range, append, refuse_meta)

    def get_bytes(
        self,
        bucket: str,
        key: str,
        max_bytes: int,
        region: str | None = None,
        byte_range: tuple[int, int] | None = None,
        refuse_meta: str | None = None,
    ) -> bytes:
        self.reads.append((key, byte_range))
        return super().get_bytes(bucket, key, max_bytes, region, byte_range, refuse_meta)


@pytest.fixture
def s3() -> Iterator[Any]:
    with moto_buckets("archive") as client:
        yield client


def test_single_file_fmp4_reads_each_byte_once(s3: Any, tmp_path: Path) -> None:
    rec = record(BY_NAME["fmp4_single_file"], tmp_path / "rec")
    for relative in rec.files:
        s3.upload_file(str(rec.directory / relative), "archive", f"live/cam/{relative}")
    segments = parse_playlist((rec.directory / "index.m3u8").read_text(), "live/cam/index.m3u8", "live/cam")
    assert len(segments) >= 3 and len({s.key for s in segments}) == 1
    store = CountingStore(Settings())
    work = tmp_path / "work"
    work.mkdir()
    opened = list(prefetch(store, S3Location("archive", "us-east-1"), segments, work, ahead=3))
    assert [item.reason for item in opened] == [""] * len(segments)
    init = [r for r in store.reads if r[1] is not None and r[1][0] == 0]
    assert len(init) == 1, "the initialization section is fetched once"
    ranges = sorted(r[1] for r in store.reads if r[1] is not None)
    assert all(a[1] <= b[0] for a, b in pairwise(ranges)), "no byte read twice"
    assert all(r[1] is not None for r in store.reads), "never the whole object"
    assert ranges[-1][1] == (rec.directory / "index.m4s").stat().st_size
    assert list(work.iterdir()) == []
