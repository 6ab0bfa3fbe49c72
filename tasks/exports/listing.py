"""Listing exports newest first from a registry ZSET (job_id -> created time), RQ-style: a read,
never a scan. The admission script adds each job; an entry whose record expired is removed
here when a listing meets it.

The cursor names the last entry returned ("<created>:<job_id>"), not an offset, so jobs admitted
while a client pages do not shift the pages it has not read yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import redis

from tasks.exports.states import JobState

MAX_LIMIT = 1000
SCAN_BATCH = 200  # registry entries read per round trip
MAX_SCANNED = 5000  # entries one page may look at (a state filter that rarely matches stops here)
MAX_CURSOR_CHARS = 128  # a cursor this listing makes is about 50: a time and a job id


class Listed(Protocol):
    @property
    def state(self) -> JobState: ...


R = TypeVar("R", bound=Listed)


def parse_cursor(cursor: str) -> tuple[float, str] | None:
    """(created time, job id) of the last entry of the previous page; None for the first page."""
    if not cursor:
        return None
    if len(cursor) > MAX_CURSOR_CHARS:  # refused without echoing it back: an answer stays small
        raise ValueError(f"longer than any cursor a listing returns ({MAX_CURSOR_CHARS} characters at most)")
    created, sep, job_id = cursor.partition(":")
    try:
        value = float(created)
    except ValueError:
        value = float("nan")
    if not sep or not job_id or value != value:
        raise ValueError(f"bad cursor {cursor!r}: pass back the cursor a listing returned")
    return value, job_id


def page(
    client: redis.Redis,
    registry: str,
    get: Callable[[str], R | None],
    state: JobState | None,
    limit: int,
    cursor: str,
) -> tuple[list[R], str]:
    """At most `limit` records after `cursor`, newest first, in `state` if given; and the next
    cursor ("" when the registry has no more)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"bad limit {limit}: between 1 and {MAX_LIMIT}")
    after = parse_cursor(cursor)
    found: list[R] = []
    top: float | str = "+inf" if after is None else after[0]
    scanned, last = 0, after
    while len(found) < limit and scanned < MAX_SCANNED:
        rows = client.zrevrangebyscore(registry, top, "-inf", start=0, num=SCAN_BATCH, withscores=True)
        fresh = [(_text(row[0]), float(row[1])) for row in rows]
        if last is not None:  # entries at the cursor's own score come after it only below its id
            fresh = [(m, s) for m, s in fresh if s < last[0] or (s == last[0] and m < last[1])]
        if not fresh:
            return found, ""
        for job_id, created in fresh:
            scanned += 1
            last = (created, job_id)
            top = created
            record = get(job_id)
            if record is None:
                client.zrem(registry, job_id)  # its record expired: drop it lazily
            elif state is None or record.state is state:
                found.append(record)
                if len(found) == limit:
                    break
    if last is None:
        return found, ""
    return found, f"{last[0]!r}:{last[1]}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
