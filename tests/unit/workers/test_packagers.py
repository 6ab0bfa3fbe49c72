"""Packagers' playlists read exactly: #EXT-X-GAP, #EXT-X-KEY (AES-128, NONE, SAMPLE-AES, IVs),
master playlists and the choice of one rendition, streamed decryption, and the Rendition
field's place in a job's identity."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from tasks.exports.spec import ErrorCode
from tests.factories import export_spec
from tests.recorders import _aes
from workers.archive.hls_parser import GAP_REASON
from workers.archive.packing import SegmentPacker, unpack
from workers.archive.playlists import LEADING_MS, covering, parse_playlist
from workers.archive.variants import UnknownRendition, choose, ladder, parse_master
from workers.transfer.aes import UndecryptableSegment, decrypt_file

KEYS = """#EXTM3U
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-KEY:METHOD=AES-128,URI="k0.key",IV=0x0123456789abcdef0123456789ABCDEF
#EXTINF:2.0,
a.ts
#EXT-X-KEY:METHOD=AES-128,URI="keys/k1.key"
#EXTINF:2.0,
b.ts
#EXTINF:2.0,
#EXT-X-GAP
c.ts
#EXT-X-KEY:METHOD=NONE
#EXTINF:2.0,
d.ts
#EXT-X-KEY:METHOD=AES-128,URI="../other/k.key"
#EXTINF:2.0,
e.ts
#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k0.key"
#EXTINF:2.0,
f.ts
#EXT-X-ENDLIST
"""


def test_keys_ivs_and_gaps_are_read_per_entry() -> None:
    a, b, c, d, e, f = parse_playlist(KEYS, "r/cam/index.m3u8", "r/cam")
    assert (a.aes_key, a.aes_iv) == ("r/cam/k0.key", bytes.fromhex("0123456789abcdef0123456789abcdef"))
    assert (b.aes_key, b.aes_iv) == ("r/cam/keys/k1.key", (8).to_bytes(16, "big")), "implicit IV: sequence"
    assert (c.refused, c.aes_key) == (GAP_REASON, None)
    assert (d.refused, d.aes_key, d.aes_iv) == ("", None, None), "METHOD=NONE ends encryption"
    assert "key URI '../other/k.key' leaves the recording's folder" in e.refused and e.aes_key is None
    assert "SAMPLE-AES encryption" in f.refused
    assert [s.start_ms for s in (a, b, c, d, e, f)] == [0, 2000, 4000, 6000, 8000, 10000]


def test_packed_rows_keep_keys_and_ivs() -> None:
    segments = parse_playlist(KEYS, "r/cam/index.m3u8", "r/cam")
    packer = SegmentPacker(1 << 20)
    for segment in segments:
        packer.add(segment)
    packed = packer.result()
    assert packed is not None
    assert list(unpack(packed, "r/cam/index.m3u8")) == segments


def test_covering_takes_the_segment_continuing_a_range_that_ends_at_its_start() -> None:
    text = "#EXTM3U\n" + "".join(f"#EXTINF:2.0,\ns{i}.ts\n" for i in range(4))
    segments = parse_playlist(text, "r/cam/index.m3u8", "r/cam")
    assert [s.key[-6:] for s in covering(segments, 2000, 4000, LEADING_MS)] == ["/s1.ts", "/s2.ts"]
    assert [s.key[-6:] for s in covering(segments, 2000, 4000)] == ["/s1.ts"], "a lookup's own answer"
    assert [s.key[-6:] for s in covering(segments, 2000, 3000, LEADING_MS)] == ["/s1.ts"]
    after_a_gap = parse_playlist(
        text.replace("#EXTINF:2.0,\ns2.ts", "#EXT-X-DISCONTINUITY\n#EXTINF:2.0,\ns2.ts"),
        "r/cam/index.m3u8",
        "r/cam",
    )
    assert [s.key[-6:] for s in covering(after_a_gap, 2000, 4000, LEADING_MS)] == ["/s1.ts"]


MASTER = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"
low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1280x720,CODECS="avc1.4d401f,mp4a.40.2",NAME="720p"
mid/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2800000,RESOLUTION=1920x1080
high.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100000,URI="iframes.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=9000000
https://cdn.example.com/elsewhere.m3u8
"""


def test_a_master_lists_its_renditions_best_first() -> None:
    renditions = ladder([parse_master(MASTER, "r/cam/master.m3u8", "r/cam")])
    assert [(r.name, r.playlist, r.width, r.bandwidth) for r in renditions] == [
        ("high.m3u8", "r/cam/high.m3u8", 1920, 2800000),
        ("720p", "r/cam/mid/index.m3u8", 1280, 2800000),
        ("low/index.m3u8", "r/cam/low/index.m3u8", 640, 800000),
    ]
    assert renditions[1].codecs == "avc1.4d401f,mp4a.40.2"
    assert renditions[1].answer() == {
        "Name": "720p",
        "Width": 1280,
        "Height": 720,
        "Bandwidth": 2800000,
        "Codec": "avc1.4d401f,mp4a.40.2",
    }


@pytest.mark.parametrize(
    ("wanted", "playlist"),
    [
        ("", "r/cam/high.m3u8"),
        ("720p", "r/cam/mid/index.m3u8"),
        ("mid", "r/cam/mid/index.m3u8"),
        ("low/index.m3u8", "r/cam/low/index.m3u8"),
        ("low/index", "r/cam/low/index.m3u8"),
        ("640X360", "r/cam/low/index.m3u8"),
    ],
)
def test_a_rendition_is_chosen_by_name_uri_folder_or_size(wanted: str, playlist: str) -> None:
    renditions = ladder([parse_master(MASTER, "r/cam/master.m3u8", "r/cam")])
    assert [r.playlist for r in choose(renditions, wanted, "r/cam")] == [playlist]


def test_an_unknown_rendition_is_a_bad_request() -> None:
    renditions = ladder([parse_master(MASTER, "r/cam/master.m3u8", "r/cam")])
    with pytest.raises(
        UnknownRendition, match=r"^bad request: Rendition: '4k' is not one of: high.m3u8 \(1920x1080\), 720p"
    ) as raised:
        choose(renditions, "4k", "r/cam")
    assert raised.value.code is ErrorCode.BAD_REQUEST


def test_decryption_streams_in_bounded_memory(tmp_path: Path) -> None:
    key, iv = os.urandom(16), os.urandom(16)
    clear = os.urandom(8 * 1024 * 1024 + 5)
    (tmp_path / "enc").write_bytes(_aes(key, iv, clear, encrypt=True))
    tracemalloc.start()
    try:
        written = decrypt_file(tmp_path / "enc", tmp_path / "clear", key, iv)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written == len(clear) and (tmp_path / "clear").read_bytes() == clear
    assert peak < 4 * 1024 * 1024, "one chunk at a time, never the whole segment"
    with pytest.raises(UndecryptableSegment, match="does not decrypt"):
        decrypt_file(tmp_path / "enc", tmp_path / "clear", os.urandom(16), iv)
    with pytest.raises(UndecryptableSegment, match="not 16 bytes"):
        decrypt_file(tmp_path / "enc", tmp_path / "clear", key[:15], iv)


def test_rendition_joins_the_job_identity_only_when_given() -> None:
    plain = export_spec()
    assert "rendition" not in plain.identity()
    assert plain.job_id == export_spec(rendition="").job_id
    assert export_spec(rendition="720p").job_id != plain.job_id
    assert export_spec(rendition="720p").job_id != export_spec(rendition="360p").job_id
    assert type(plain).from_json(export_spec(rendition="720p").to_json()).rendition == "720p"
