"""Which copied video packets an MP4 track can carry, and what the rest cost.

An MP4 track's decode times must strictly increase. A recording can break that: a recorder that
sends a stretch again, an encoder or muxer whose DTS repeats or steps back. A packet is carried
when it can be: one whose DTS does not increase but which is presented after the last one written
is decoded right after it (DTS nudged to the next tick; it is still shown when it says). One that
cannot be carried is never dropped silently. The very packet written a moment ago (same time, same
bytes) is a duplicate: nothing is missing. Any other is dropped with every picture after it up to
the next keyframe (they may predict from it, and a clip that decodes wrongly is worse than a
shorter one); that run is a Gap, counted out of the clip's coverage and so into LackLength.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from workers.media.timeline import CLOCK, Gap, TimedPacket

log = logging.getLogger(__name__)

RECENT_PICTURES = 64  # pictures a duplicate is looked for among: far past any reorder window
REASON = "video packets whose decode time does not increase (DTS repeats or steps back)"


@dataclass
class VideoCarrier:
    """Feed each video packet about to be written, with its clip timestamps (ticks)."""

    last_dts: int | None = None
    gaps: list[Gap] = field(default_factory=list)
    dropped_ms: float = 0.0  # inside the range: the pictures of the gaps
    duplicates: int = 0
    _skipping: bool = False  # dropping up to the next keyframe
    # (pts, hash of the bytes) of the packets written last: muxing may take a packet's buffer
    _recent: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RECENT_PICTURES))

    def dts_for(self, item: TimedPacket, pts: int, dts: int, frame_ticks: int, in_range: bool) -> int | None:
        """The DTS to write the packet with, or None when it is not written."""
        fresh = self.last_dts is None or dts > self.last_dts
        if self._skipping:
            if not (item.keyframe and fresh):
                self._extend(item, frame_ticks, in_range)
                return None
            self._skipping = False
        if not fresh:
            assert self.last_dts is not None
            if self._written(pts, item.packet):  # the same picture again: it is in the clip already
                self.duplicates += 1
                log.warning("duplicate video packet not written", extra={"at_ms": round(item.at_ms)})
                return None
            if pts <= self.last_dts:  # shown before what is already decoded: cannot be carried
                log.warning("video packets not carried: a gap", extra={"at_ms": round(item.at_ms)})
                self._skipping = True
                self.gaps.append(Gap(item.at_ms, 0.0, REASON))
                self._extend(item, frame_ticks, in_range)
                return None
            dts = self.last_dts + 1  # decoded right after the last one; still shown at its own time
        self.last_dts = dts
        self._recent.append((pts, _digest(item.packet)))
        return dts

    def _written(self, pts: int, packet: Any) -> bool:
        """The very same packet (time and bytes) was written a moment ago: a resent one."""
        return (pts, _digest(packet)) in self._recent

    def _extend(self, item: TimedPacket, frame_ticks: int, in_range: bool) -> None:
        """The current gap also holds this picture."""
        frame_ms = (item.duration or frame_ticks) * 1000 / CLOCK
        if in_range:
            self.dropped_ms += frame_ms
        gap = self.gaps[-1]
        start = min(gap.at_ms, item.at_ms)
        end = max(gap.at_ms + gap.duration_ms, item.at_ms + frame_ms)
        self.gaps[-1] = Gap(start, end - start, REASON)


def _digest(packet: Any) -> int:
    return hash(bytes(packet)) if packet is not None else 0
