"""How much of the requested range a clip's pictures cover, from their presentation times.

A picture is on screen from its own presentation time until the next picture's, so coverage
is measured between presentation times, not summed from nominal packet durations (which are
wrong, or absent, at a variable frame rate: a camera that drops to 12 fps would otherwise be
reported as missing half its time). A picture held longer than MAX_FRAME_MS is a hole in the
recording, not a slow frame; it counts for one nominal frame duration.
"""

from __future__ import annotations

from array import array

MAX_FRAME_MS = 1000.0  # a camera at 1 fps still shows every second; a longer wait is a hole


class Coverage:
    """Collect the presentation times of the pictures written (any order); `covered_ms` at the
    end. Kept as 8 bytes a picture: a 30-minute 60 fps clip needs under 1 MB."""

    def __init__(self) -> None:
        self._times = array("d")

    def add(self, at_ms: float) -> None:
        self._times.append(at_ms)

    def covered_ms(self, start_ms: float, end_ms: float, nominal_frame_ms: float) -> float:
        times = sorted(set(self._times))
        covered = 0.0
        for index, at in enumerate(times):
            following = times[index + 1] if index + 1 < len(times) else None
            shown_for = following - at if following is not None else nominal_frame_ms
            if shown_for > MAX_FRAME_MS:
                shown_for = nominal_frame_ms
            covered += max(0.0, min(at + shown_for, end_ms) - max(at, start_ms))
        return covered
