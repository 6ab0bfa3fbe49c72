"""The picture on screen at one instant of the recording, decoded from its GOP's keyframe.

Packets are read (demuxed, not decoded) from the segment holding the instant and, where that
segment does not start with a keyframe before it, from the one before; each packet's timestamps
are moved onto the recording's timeline (a segment's first picture is at its playlist position).
Decoding starts at the last keyframe at or before the instant and stops at the first picture
after it: at most one GOP is decoded. The answer is the last picture at or before the instant —
what a player shows then, any frame, not only keyframes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av

from workers.archive.model import Segment

TICKS = 90_000  # the timeline's clock here: MPEG-TS's, so no precision is lost


class NoPicture(Exception):
    """No decodable picture is on screen at the instant (audio only, corrupt, or no keyframe)."""


@dataclass
class TimedPacket:
    packet: av.Packet
    ticks: int  # presentation time on the recording's timeline, in TICKS
    keyframe: bool
    stream: av.VideoStream


def timeline_packets(segment: Segment, container: av.container.InputContainer) -> list[TimedPacket]:
    """The segment's video packets in decode order, stamped with timeline time."""
    if not container.streams.video:
        return []
    stream = container.streams.video[0]
    base = stream.time_base or Fraction(1, TICKS)
    raw = [(p, p.pts, p.dts) for p in container.demux(stream) if p.pts is not None and p.size]
    if not raw:
        return []
    first = min(int(pts or 0) for _, pts, _ in raw)  # the first picture: its playlist position
    start = round(segment.start_ms * TICKS / 1000)
    found = []
    for packet, pts, dts_raw in raw:
        ticks = start + round((int(pts or 0) - first) * base * TICKS)
        dts = start + round((int(dts_raw if dts_raw is not None else pts or 0) - first) * base * TICKS)
        packet.pts, packet.dts, packet.time_base = ticks, dts, Fraction(1, TICKS)
        found.append(TimedPacket(packet, ticks, bool(packet.is_keyframe), stream))
    return found


def gop_for(packets: list[TimedPacket], at_ms: float) -> list[TimedPacket]:
    """The packets to decode for the picture at `at_ms`: from the last keyframe at or before it
    to the end of what was read (decoding stops at the first picture past the instant)."""
    target = round(at_ms * TICKS / 1000)
    keys = [i for i, p in enumerate(packets) if p.keyframe and p.ticks <= target]
    if not keys:
        raise NoPicture("no keyframe at or before the instant")
    return packets[keys[-1] :]


def picture_at(packets: list[TimedPacket], at_ms: float) -> tuple[av.VideoFrame, int]:
    """The picture on screen at `at_ms`, and how many packets were decoded for it."""
    gop = gop_for(packets, at_ms)
    target = round(at_ms * TICKS / 1000)
    decoder = gop[0].stream.codec_context
    best: av.VideoFrame | None = None
    decoded = 0

    def frames(packet: av.Packet | None) -> list[av.VideoFrame]:
        try:
            return list(decoder.decode(packet))
        except av.FFmpegError:
            return []  # a damaged packet: the pictures around it still count

    for item in gop:
        decoded += 1
        for frame in frames(item.packet):
            if frame.pts is not None and frame.pts > target:
                if best is None:
                    raise NoPicture("the first picture after the keyframe is past the instant")
                return best, decoded
            best = frame
    for frame in frames(None):  # flush: B-frames held back
        if frame.pts is not None and frame.pts > target:
            break
        best = frame
    if best is None:
        raise NoPicture("nothing decodes there")
    return best, decoded


def scaled(frame: av.VideoFrame, width: int) -> av.VideoFrame:
    """The frame `width` pixels wide, aspect kept (even height); unchanged for 0 or its own width."""
    if width <= 0 or width == frame.width:
        return frame
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    return frame.reformat(width=width, height=height)
