"""Which processes a process started, read from /proc: to prove a stop left nothing behind.

Processes started with start_new_session are still children by parent pid, so walking the
parent links finds them wherever their process group is."""

from __future__ import annotations

import time
from pathlib import Path


def _parent_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name in (...) may hold spaces
    return int(fields[1]), fields[0]


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid`."""
    return {p for p in descendants(pid) if (_parent_and_state(p) or (0, ""))[0] == pid}


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, children of children included."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _parent_and_state(int(entry.name))
            if found is not None:
                children.setdefault(found[0], []).append(int(entry.name))
    seen: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie waiting to be reaped has stopped running)."""
    running = set()
    for pid in pids:
        found = _parent_and_state(pid)
        if found is not None and found[1] != "Z":
            running.add(pid)
    return running


def wait_all_gone(pids: set[int], timeout_s: float) -> set[int]:
    """Poll until none of `pids` runs; returns the survivors at the deadline."""
    deadline = time.monotonic() + timeout_s
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
