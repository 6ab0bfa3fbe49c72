"""The content of H.264/H.265 parameter sets, for telling a real change of stream from noise.

Two encoders (or one encoder's first and later segments) can write byte-different extradata
for the same stream: a trailing zero byte after a NAL unit, emulation prevention bytes placed
differently, Annex B in MPEG-TS versus avcC/hvcC in fMP4, SEI units or start-code lengths.
None of that changes how the stream decodes; what the SPS/PPS/VPS payloads say does. This
module reduces extradata to those payloads, normalised, so they can be compared as sets.
"""

from __future__ import annotations

H264_PARAMETER_SETS = {7, 8}  # SPS, PPS
HEVC_PARAMETER_SETS = {32, 33, 34}  # VPS, SPS, PPS


def nal_type(nal: bytes, codec: str) -> int:
    if not nal:
        return -1
    return nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F


def annexb_units(data: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (start codes of 3 or 4 bytes), trailing zeros kept."""
    units: list[bytes] = []
    index = data.find(b"\x00\x00\x01")
    while index != -1:
        start = index + 3
        following = data.find(b"\x00\x00\x01", start)
        units.append(data[start : following if following != -1 else len(data)])
        index = following
    return units


def _length_prefixed(data: bytes, at: int, count: int) -> tuple[list[bytes], int]:
    units: list[bytes] = []
    for _ in range(count):
        if at + 2 > len(data):
            break
        size = int.from_bytes(data[at : at + 2], "big")
        units.append(data[at + 2 : at + 2 + size])
        at += 2 + size
    return units, at


def config_record_units(data: bytes, codec: str) -> list[bytes]:
    """NAL units of an avcC (ISO 14496-15 5.2.4) or hvcC (8.3.3) decoder configuration record."""
    if codec == "h264":
        if len(data) < 7:
            return []
        sps, at = _length_prefixed(data, 6, data[5] & 0x1F)
        if at >= len(data):
            return sps
        pps, _ = _length_prefixed(data, at + 1, data[at])
        return sps + pps
    if len(data) < 23:
        return []
    units: list[bytes] = []
    at = 23
    for _ in range(data[22]):
        if at + 3 > len(data):
            break
        found, at = _length_prefixed(data, at + 3, int.from_bytes(data[at + 1 : at + 3], "big"))
        units += found
    return units


def normalised(nal: bytes) -> bytes:
    """The NAL's RBSP: trailing zero bytes dropped and emulation prevention bytes removed."""
    nal = nal.rstrip(b"\x00")
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def parameter_sets(extradata: bytes | None, codec: str) -> frozenset[bytes] | None:
    """The normalised parameter sets in a stream's extradata; None where there are none to read
    (no extradata, another codec): the caller then compares on the decoded fields alone."""
    if not extradata or codec not in {"h264", "hevc"}:
        return None
    is_record = extradata[0] == 1 and not extradata.startswith(b"\x00\x00\x01")
    units = config_record_units(extradata, codec) if is_record else annexb_units(extradata)
    wanted = H264_PARAMETER_SETS if codec == "h264" else HEVC_PARAMETER_SETS
    found = frozenset(normalised(u) for u in units if nal_type(u, codec) in wanted)
    return found or None
