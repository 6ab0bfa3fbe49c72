"""The renditions a recording offers, as recording-spans lists them.

Kept to one function (`renditions_of`) so the multivariant-playlist support of the archive can
take its place: it reads the variants a master playlist lists (NAME or URI, RESOLUTION,
BANDWIDTH, CODECS), or describes a plain recording as one rendition.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


@dataclass(frozen=True)
class Rendition:
    """One variant; 0 or "" where the playlist does not say (a plain recording's size and codec
    are in its segments, which recording-spans never reads)."""

    name: str
    width: int = 0
    height: int = 0
    bandwidth: int = 0
    codec: str = ""


def _attributes(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in ATTRIBUTE.findall(line.partition(":")[2])}


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0


def renditions_of(masters: Iterable[tuple[str, str]]) -> list[Rendition]:
    """The variants the master playlists (key, text) list, highest BANDWIDTH first; one unnamed
    rendition when there is no master (a plain recording)."""
    found: dict[str, Rendition] = {}
    for _, text in masters:
        pending: dict[str, str] | None = None
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("#EXT-X-STREAM-INF"):
                pending = _attributes(line)
            elif pending is not None and line and not line.startswith("#"):
                width, _, height = pending.get("RESOLUTION", "").partition("x")
                name = pending.get("NAME") or posixpath.dirname(line) or line
                found.setdefault(
                    name,
                    Rendition(
                        name=name,
                        width=_int(width),
                        height=_int(height),
                        bandwidth=_int(pending.get("BANDWIDTH", "")),
                        codec=pending.get("CODECS", ""),
                    ),
                )
                pending = None
    if not found:
        return [Rendition(name="")]
    return sorted(found.values(), key=lambda r: (-r.bandwidth, -r.width * r.height, r.name))
