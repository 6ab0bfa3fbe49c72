"""Multivariant (master) playlists: which renditions a recording has, and which one an export reads.

Packagers (ffmpeg's -var_stream_map, MediaLive/MediaPackage, Wowza, Nimble) write an ABR ladder:
one master playlist listing a media playlist per rendition, side by side or in subfolders. The
renditions are the same pictures at different sizes, so reading them together would splice
sizes and show every instant several times: an export reads ONE rendition, the one the request
names (`Rendition`) or else the best (highest BANDWIDTH, then the most pixels).

A variant whose URI leaves the recording's folder is left out (never fetched), as a segment's
would be. A master's renditions are kept in the archive index with its summary, so listing them
(recording-spans) costs no read once the master is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.exports.spec import ErrorCode
from workers.archive.hls_parser import attributes_of
from workers.archive.model import PlaylistError, resolve_segment_key
from workers.errors import ExportError

MASTER_MAX_BYTES = 4096  # a master of a few renditions is well under 1 KiB; a media playlist
# this small (a minute of segments) is read whole anyway, and then kept in the index


@dataclass(frozen=True)
class Rendition:
    """One variant of an ABR ladder; `playlist` is its media playlist's S3 key."""

    name: str  # NAME where the master gives one, else the URI relative to the recording's folder
    playlist: str
    width: int = 0
    height: int = 0
    bandwidth: int = 0
    codecs: str = ""

    def matches(self, wanted: str, prefix: str) -> bool:
        """A request's `Rendition`: the name, the URI (with or without .m3u8, or its folder), or
        WIDTHxHEIGHT."""
        wanted = wanted.strip().strip("/")
        relative = self.playlist[len(prefix) + 1 :] if prefix else self.playlist
        names = {self.name, relative, relative.removesuffix(".m3u8"), relative.split("/", 1)[0]}
        if wanted in names:
            return True
        return bool(self.width) and wanted.lower() == f"{self.width}x{self.height}"

    def answer(self) -> dict[str, object]:
        """As recording-spans answers it (API contract: Renditions [{Name, Width, Height,
        Bandwidth, Codec}])."""
        return {
            "Name": self.name,
            "Width": self.width,
            "Height": self.height,
            "Bandwidth": self.bandwidth,
            "Codec": self.codecs,
        }

    def row(self) -> list[object]:
        return [self.name, self.playlist, self.width, self.height, self.bandwidth, self.codecs]

    @classmethod
    def from_row(cls, row: list[object]) -> Rendition:
        name, playlist, width, height, bandwidth, codecs = row
        return cls(str(name), str(playlist), int(width), int(height), int(bandwidth), str(codecs))  # type: ignore[call-overload]


class UnknownRendition(ExportError):
    """The request names a rendition the recording does not have: a bad request (ErrorCode 2)
    whose message lists the ones it has."""

    def __init__(self, wanted: str, renditions: list[Rendition]) -> None:
        have = ", ".join(f"{r.name} ({r.width}x{r.height})" for r in renditions)
        super().__init__(
            ErrorCode.BAD_REQUEST, f"bad request: Rendition: {wanted[:80]!r} is not one of: {have}"
        )


def is_master(text: str) -> bool:
    return "#EXT-X-STREAM-INF" in text


def parse_master(text: str, master_key: str, prefix: str) -> list[Rendition]:
    """The variants of a master playlist (I-frame and image playlists left out), in its order."""
    renditions: list[Rendition] = []
    pending: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF"):
            pending = attributes_of(line)
        elif line and not line.startswith("#") and pending is not None:
            attributes, pending = pending, None
            try:
                key = resolve_segment_key(master_key, line, prefix, what="variant playlist")
            except PlaylistError:
                continue
            width, _, height = attributes.get("RESOLUTION", "").lower().partition("x")
            relative = key[len(prefix) + 1 :] if prefix else key
            renditions.append(
                Rendition(
                    name=attributes.get("NAME") or relative,
                    playlist=key,
                    width=_int(width),
                    height=_int(height),
                    bandwidth=_int(attributes.get("BANDWIDTH", "")),
                    codecs=attributes.get("CODECS", ""),
                )
            )
    return renditions


def _int(text: str) -> int:
    try:
        return max(int(text), 0)
    except ValueError:
        return 0


def ladder(masters: list[list[Rendition]]) -> list[Rendition]:
    """The recording's renditions from all its masters, each playlist once, best first."""
    seen: dict[str, Rendition] = {}
    for renditions in masters:
        for rendition in renditions:
            seen.setdefault(rendition.playlist, rendition)
    return sorted(seen.values(), key=lambda r: (-r.bandwidth, -r.width * r.height, r.name))


def choose(renditions: list[Rendition], wanted: str, prefix: str) -> list[Rendition]:
    """The rendition an export reads: the one named, else the best; every variant of that name
    (several masters, e.g. one per hour, may each list it)."""
    if not wanted:
        best = renditions[0]
        return [r for r in renditions if r.name == best.name]
    named = [r for r in renditions if r.matches(wanted, prefix)]
    if not named:
        raise UnknownRendition(wanted, renditions)
    return [r for r in named if r.name == named[0].name]
