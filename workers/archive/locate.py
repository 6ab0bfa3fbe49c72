"""Which playlists of a recording can hold a range, reading as few of them as possible.

What is known exactly (a playlist the index has read whole) is judged exactly. The rest are
judged by where they start, which the head of a playlist (a ranged GET of its first KiB: the
first PROGRAM-DATE-TIME) tells without reading it all:

- A playlist last modified before the range starts (less a clock-skew margin) cannot hold it:
  recorders write a playlist after the segments it lists. No read.
- Playlists the index has placed (from an earlier head or full read) are sorted by where they
  start: a binary search over them costs no read. When only a few playlists are new or changed
  since, their heads are read; that is the usual warm case.
- With a cold index, the order is guessed two ways, by LastModified (a recorder writes its
  playlists one after another) and by name in natural order (recorders name them by time, and a
  rewritten playlist keeps its name); a binary search with head reads runs over each, and the
  neighbours on each side are checked too, so a few playlists out of order still count. A guess
  that the heads read contradict (UUID names, a bulk copy with one LastModified) is dropped;
  when both are, every candidate's head is read once and the exact order searched.
- A head also gives an estimate of where the playlist ends (its size at the density of the
  head's entries, with a margin): a long playlist that started before its neighbours (a day
  beside hours) is read whole for a range it may reach once its head is known.
- A playlist without PROGRAM-DATE-TIME has its own timeline from 0: it is judged on that
  timeline by the same estimate, apart from the search.

- With a cold index, a playlist the search did not place and listed more than LONGER times the
  size of the largest one it placed has its head read: a playlist spans about its size at its
  recorder's entry density, so only such a one can reach the range from wherever it sits in the
  guessed orders (a day-long playlist beside hourly ones, under an unrelated name).

docs/archive-index.md says more.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable

from tasks.storage import ListedObject
from workers.archive.index import PlaylistSummary

NEIGHBOURS = 2  # playlists checked beyond each end of the search: tolerates a little disorder
FEW_UNKNOWN = 8  # up to this many playlists the index does not know have their heads read
# With a cold index, a playlist not placed by the search whose size is more than this times the
# largest placed one has its head read: recorders' playlists of one length differ by far less
# (hourly ones by a few %), a day-long one beside hourly ones by 24x.
LONGER = 1.5


@functools.lru_cache(maxsize=1 << 16)
def natural_key(key: str) -> tuple[object, ...]:
    """h2.m3u8 before h10.m3u8: recorders name playlists by time, not always zero-padded.
    Remembered: every lookup and spans page sorts the same recordings' names again."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key))


class _Disordered(Exception):
    """The heads read contradict the guessed order: a search over it proves nothing."""


class Locator:
    """Chooses the playlists to read for one range; `head` reads (and indexes) a playlist's
    head, called only for playlists the index does not know."""

    def __init__(
        self,
        listed: list[ListedObject],
        known: dict[str, PlaylistSummary],
        head: Callable[[ListedObject], PlaylistSummary],
        skew_ms: float,
    ) -> None:
        self.listed, self.known, self._head, self.skew_ms = listed, known, head, skew_ms

    def summary(self, obj: ListedObject) -> PlaylistSummary:
        found = self.known.get(obj.key)
        if found is None:
            found = self._head(obj)
            self.known[obj.key] = found
        return found

    def choose(self, start_ms: float, end_ms: float) -> list[ListedObject]:
        candidates = [o for o in self.listed if self._may_hold(o, start_ms)]
        unknown = [o for o in candidates if o.key not in self.known]
        if len(unknown) <= FEW_UNKNOWN:  # new or changed since the index last looked: place them
            for obj in unknown:
                self.summary(obj)
            unknown = []
        picked: list[ListedObject] = []
        if unknown:  # a cold index: guess the order from the listing, two ways
            guesses = (
                sorted(candidates, key=lambda o: (o.last_modified, o.key)),
                sorted(candidates, key=lambda o: natural_key(o.key)),
            )
            trusted = 0
            for ordered in guesses:
                try:
                    picked += self._search(ordered, start_ms, end_ms, check_order=True)
                    trusted += 1
                except _Disordered:
                    continue
            # A guessed order places playlists like the ones its search read; one listed larger
            # than all of them may be long enough to reach the range from anywhere in it, so its
            # head is read. Neither guess holding: every candidate is placed by its head, once.
            for obj in self._larger_than_placed(candidates) if trusted else candidates:
                self.summary(obj)
        placed = sorted(
            (o for o in candidates if self._placed(o)), key=lambda o: (self.known[o.key].first_ms, o.key)
        )
        picked += self._search(placed, start_ms, end_ms)  # exact and free
        picked += [o for o in candidates if self._headless(o) or self._may_reach(o, start_ms, end_ms)]
        chosen = {o.key: o for o in picked}
        for obj in self.listed:  # known whole (before or during the search): judged exactly
            summary = self.known.get(obj.key)
            if summary is not None and summary.complete and summary.overlaps(start_ms, end_ms):
                chosen[obj.key] = obj
        return sorted(chosen.values(), key=lambda o: (o.last_modified, o.key))

    def _larger_than_placed(self, candidates: list[ListedObject]) -> list[ListedObject]:
        """Candidates not placed yet that are more than LONGER times the size of the largest one
        placed: a playlist spans about its size at its recorder's entry density, so only those can
        span more than the playlists the search checked (a day-long playlist beside hourly ones,
        under any name, written at any time)."""
        placed = [o.size for o in candidates if self._placed(o)]
        limit = max(placed, default=0) * LONGER
        return [o for o in candidates if o.key not in self.known and o.size > limit]

    def _may_reach(self, obj: ListedObject, start_ms: float, end_ms: float) -> bool:
        summary = self.known.get(obj.key)
        return summary is not None and summary.may_reach(start_ms, end_ms)

    def _placed(self, obj: ListedObject) -> bool:
        """Placed on the recording's absolute timeline by where it starts."""
        summary = self.known.get(obj.key)
        return summary is not None and summary.usable and summary.absolute and summary.first_ms is not None

    def _headless(self, obj: ListedObject) -> bool:
        """Known only as a head without a segment (a long header): it is read whole."""
        summary = self.known.get(obj.key)
        return summary is not None and summary.usable and not summary.complete and summary.first_ms is None

    def _may_hold(self, obj: ListedObject, start_ms: float) -> bool:
        if obj.key in self.known and self.known[obj.key].complete:
            return True  # placed exactly; kept so the search gets its start for free
        return obj.last_modified * 1000 + self.skew_ms >= start_ms

    def _position(self, obj: ListedObject, unplaced: list[ListedObject]) -> float | None:
        summary = self.summary(obj)
        if summary.first_ms is None or not summary.usable:
            if summary.usable and not summary.complete:
                unplaced.append(obj)  # its head holds no segment: read it whole
            return None
        if not summary.absolute:
            return None  # on its own timeline: judged apart, by its estimated span
        return summary.first_ms

    def _search(
        self, ordered: list[ListedObject], start_ms: float, end_ms: float, check_order: bool = False
    ) -> list[ListedObject]:
        """The playlists of `ordered` (sorted by where they start, or guessed to be) that start in
        the range, and the last one starting at or before it; with `check_order`, _Disordered
        when two positions read contradict the order."""
        unplaced: list[ListedObject] = []
        read: dict[int, float] = {}
        lo, hi = 0, len(ordered)  # positioned ones before lo start before end_ms; from hi on, after
        while lo < hi:
            mid = probe = (lo + hi) // 2
            position = None
            while probe < hi and (position := self._position(ordered[probe], unplaced)) is None:
                probe += 1
            if position is not None:
                read[probe] = position
            if position is not None and position < end_ms:
                lo = probe + 1
            else:
                hi = mid
        seen: list[tuple[float, ListedObject]] = []
        below, index = 0, lo - 1
        while index >= 0 and below <= NEIGHBOURS:
            position = self._position(ordered[index], unplaced)
            if position is not None:
                seen.append((position, ordered[index]))
                read[index] = position
                below += position <= start_ms
            index -= 1
        above, index = 0, lo
        while index < len(ordered) and above < NEIGHBOURS:
            position = self._position(ordered[index], unplaced)
            if position is not None:
                seen.append((position, ordered[index]))
                read[index] = position
                above = above + 1 if position >= end_ms else 0
            index += 1
        positions = [read[i] for i in sorted(read)]
        if check_order and any(a > b for a, b in itertools.pairwise(positions)):
            raise _Disordered
        floor = max((p for p, _ in seen if p <= start_ms), default=None)
        picked = [o for p, o in seen if p < end_ms and (p > start_ms or p == floor)]
        return [o for o in picked + unplaced if not self.known[o.key].complete]
