"""Parameter-set comparison: byte noise in extradata is no change; a new SPS is."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from tests.recorders import BY_NAME, record
from workers.media.parameter_sets import parameter_sets
from workers.media.timeline import stream_params

SPS = bytes.fromhex("6764000dacd94141f9e1000003000100000300320f1832a0")
PPS = bytes.fromhex("68ebe3cb22c0")
START = b"\x00\x00\x00\x01"


def avcc(sps: bytes, pps: bytes) -> bytes:
    return (
        bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1])
        + len(sps).to_bytes(2, "big")
        + sps
        + bytes([1])
        + len(pps).to_bytes(2, "big")
        + pps
    )


def test_trailing_zero_bytes_and_start_code_lengths_are_no_change() -> None:
    plain = START + SPS + START + PPS
    padded = b"\x00\x00\x01" + SPS + b"\x00" + START + PPS + b"\x00\x00"
    assert parameter_sets(plain, "h264") == parameter_sets(padded, "h264")


def test_annex_b_and_avcc_carrying_the_same_sets_are_equal() -> None:
    assert parameter_sets(avcc(SPS, PPS), "h264") == parameter_sets(START + SPS + START + PPS, "h264")


def test_a_different_sps_is_a_change() -> None:
    other = SPS[:-3] + b"\x11" + SPS[-2:]
    assert parameter_sets(START + other + START + PPS, "h264") != parameter_sets(
        START + SPS + START + PPS, "h264"
    )


@pytest.mark.parametrize(
    ("name", "same"),
    [("rollover_encoder_restart", True), ("x265_encoder_restart", True), ("restart_new_resolution", False)],
)
def test_encoder_restarts(name: str, same: bool, tmp_path: Path) -> None:
    rec = record(BY_NAME[name], tmp_path / name)
    params = []
    for segment in ("a001.ts", "b000.ts"):
        with av.open(str(rec.directory / segment)) as container:
            params.append(stream_params(container.streams.video[0]))
    assert params[0].same_as(params[1]) is same
