"""Where a stream-copied clip starts and ends.

Copying cannot start between keyframes, so the clip starts at the keyframe at or before the
requested start (or, with an edit list, keeps that keyframe but presents from the requested
start). It ends at the requested end; with B-frames, a frame shown after the end is kept only
while a frame shown before the end still needs it as a reference.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from workers.media.carry import VideoCarrier
from workers.media.coverage import Coverage
from workers.media.timeline import CLOCK, TimedPacket

REORDER_WINDOW = 16  # H.264/H.265 never reorder more frames than this (max DPB size)
AUDIO_LOOKBEHIND = 512  # audio packets kept while looking for the start: >10 s of AAC


@dataclass
class CutPacket:
    item: TimedPacket
    pts: int  # ticks on the clip's own clock: 0 is the first presented instant
    dts: int


@dataclass
class CopyCut:
    """Feed packets in file order; returns those to write, with the clip's timestamps."""

    start_ms: float
    end_ms: float
    edit_list: bool = False  # present from start_ms exactly (MP4 edit list) instead of the keyframe
    origin: int | None = None  # output tick that becomes clip time 0, once started
    covered_ms: float = 0.0  # audio-only clips: media time inside [start_ms, end_ms) written
    coverage: Coverage = field(default_factory=Coverage)  # the pictures written inside the range
    first_at_ms: float | None = None
    last_end_at_ms: float | None = None
    video_done: bool = False
    audio_done: bool = False
    has_audio: bool = True
    has_video: bool = True  # False: an audio-only recording, cut on audio packets alone
    _buffer: list[TimedPacket] = field(default_factory=list)  # video from the last keyframe on
    _audio: deque[TimedPacket] = field(default_factory=lambda: deque(maxlen=AUDIO_LOOKBEHIND))
    _held: list[TimedPacket] = field(default_factory=list)
    frame_ticks: int = CLOCK // 25  # refined from packet durations as they come
    shown_end: int = 0  # clip ticks: where the last frame shown before end_ms stops being shown
    _last_shown_at_ms: float | None = None  # that frame's place on the timeline
    past_end: bool = False  # a frame shown after end_ms was written as a reference: trim to shown_end
    _keyframe_past_end: float | None = None  # where the first keyframe after end_ms is shown
    carrier: VideoCarrier = field(default_factory=VideoCarrier)  # DTS that repeats or steps back

    def covered(self) -> float:
        """Media time inside [start_ms, end_ms) that was written, from presentation times; the
        pictures that could not be carried are not (the picture before them stays on screen in
        their place, which coverage by presentation times alone would count)."""
        if not self.has_video:
            return self.covered_ms
        shown = self.coverage.covered_ms(self.start_ms, self.end_ms, self.frame_ticks * 1000 / CLOCK)
        return max(0.0, shown - self.carrier.dropped_ms)

    @property
    def done(self) -> bool:
        return (self.video_done or not self.has_video) and (self.audio_done or not self.has_audio)

    def feed(self, item: TimedPacket) -> list[CutPacket]:
        if not self.has_video:
            return self._audio_only(item)
        if item.kind == "video" and item.duration > 0:
            self.frame_ticks = item.duration
        if self.origin is None:
            return self._before_start(item)
        return self._running(item)

    def finish(self) -> list[CutPacket]:
        """End of input: a clip that never passed its start begins at its last keyframe."""
        if self.origin is None and self._buffer and self._frame_end_ms(self._buffer[-1]) > self.start_ms:
            return self._start()
        return []

    def _before_start(self, item: TimedPacket) -> list[CutPacket]:
        if item.kind == "video":
            if item.keyframe and item.at_ms <= self.start_ms:
                self._buffer = [item]  # a later keyframe at or before the start is a better one
                return []
            if item.keyframe and item.at_ms > self.start_ms:
                if not self._buffer:
                    self._buffer = [item]  # the range starts in a hole: begin at the first keyframe
                    return self._start()
                return [*self._start(), *self._running(item)]
            if not self._buffer:
                return []  # undecodable without its keyframe
            self._buffer.append(item)
            if item.at_ms >= self.start_ms:
                return self._start()
            return []
        self._audio.append(item)  # TS interleaving may put it before the keyframe it goes with
        return []

    def _start(self) -> list[CutPacket]:
        keyframe = self._buffer[0]
        if self.edit_list and keyframe.at_ms < self.start_ms:
            # Present from the frame on screen at the start: where it has been read (always without
            # B-frames, so also at a variable frame rate) its own time, else snap to the frame grid.
            offset = round((self.start_ms - keyframe.at_ms) * CLOCK / 1000)
            self.origin = keyframe.pts + offset - offset % self.frame_ticks
            shown = [p for p in self._buffer if p.at_ms <= self.start_ms]
            if shown:
                self.origin = max(self.origin, max(shown, key=lambda p: p.at_ms).pts)
        else:
            self.origin = keyframe.pts
        video, self._buffer = self._buffer, []
        audio = [a for a in self._audio if a.pts >= self.origin]  # earlier audio has no picture
        self._audio.clear()
        out: list[CutPacket] = []
        for item in [*video, *audio]:
            out.extend(self._running(item))
        return out

    def _running(self, item: TimedPacket) -> list[CutPacket]:
        if item.kind == "audio":
            if self.audio_done:
                return []
            if item.at_ms >= self.end_ms:
                self.audio_done = True
                return []
            if item.pts < (self.origin or 0):
                return []
            return self._emit(item)
        if self.video_done:
            return []
        if item.at_ms >= self.end_ms:
            if len(self._held) >= REORDER_WINDOW or self._trailing_past_end(item):
                self.video_done = True
                self._held.clear()
                return []
            # Shown after the end; kept if a frame shown before it refers to it. A keyframe too:
            # an open GOP's leading pictures follow it in decode order and may be shown before the
            # end (x265 -preset ultrafast codes the last picture before a keyframe after it).
            self._held.append(item)
            return []
        out = [packet for held in self._held for packet in self._emit(held)]
        self.past_end = self.past_end or bool(self._held)  # references shown past the end
        self._held.clear()
        out.extend(self._emit(item))
        return out

    def _audio_only(self, item: TimedPacket) -> list[CutPacket]:
        """From the audio frame playing at the start to the last one that starts before the end."""
        ends_at = item.at_ms + item.duration * 1000 / CLOCK
        if self.audio_done or item.kind != "audio" or (self.origin is None and ends_at <= self.start_ms):
            return []
        if item.at_ms >= self.end_ms:
            self.audio_done = True
            return []
        if self.origin is None:
            self.origin = item.pts
        self.covered_ms += max(0.0, min(ends_at, self.end_ms) - max(item.at_ms, self.start_ms))
        return [CutPacket(item=item, pts=item.pts - self.origin, dts=item.dts - self.origin)]

    def _trailing_past_end(self, item: TimedPacket) -> bool:
        """Whether every picture that may still be shown before the end has come: `item` follows
        the first keyframe past the end (noted here when it is that keyframe) and is shown after
        it (a trailing picture) or is the next keyframe."""
        if self._keyframe_past_end is None:
            if item.keyframe:
                self._keyframe_past_end = item.at_ms
            return False
        return item.keyframe or item.at_ms >= self._keyframe_past_end

    def _frame_end_ms(self, item: TimedPacket) -> float:
        return item.at_ms + (item.duration or self.frame_ticks) * 1000 / CLOCK

    def _emit(self, item: TimedPacket) -> list[CutPacket]:
        """The packet with the clip's timestamps; none for a video packet that cannot be carried."""
        origin = self.origin or 0
        pts, dts = item.pts - origin, item.dts - origin
        if item.kind == "video":
            in_range = self.start_ms <= item.at_ms < self.end_ms
            carried = self.carrier.dts_for(item, pts, dts, self.frame_ticks, in_range)
            if carried is None:
                return []
            dts = carried
            if item.at_ms < self.end_ms:
                self.coverage.add(item.at_ms)
            if self.first_at_ms is None or item.at_ms < self.first_at_ms:
                self.first_at_ms = item.at_ms
            end = self._frame_end_ms(item)
            self.last_end_at_ms = end if self.last_end_at_ms is None else max(self.last_end_at_ms, end)
            if item.at_ms < self.end_ms and (
                self._last_shown_at_ms is None or item.at_ms >= self._last_shown_at_ms
            ):
                # With a frame past the end written, the last one before it is shown until end_ms.
                # Only that frame counts: an earlier one's distance to end_ms would also span any
                # gap cut out of the clip since.
                self._last_shown_at_ms = item.at_ms
                shown_ticks = round((self.end_ms - item.at_ms) * CLOCK / 1000)
                self.shown_end = item.pts - (self.origin or 0) + shown_ticks
        return [CutPacket(item=item, pts=pts, dts=dts)]
