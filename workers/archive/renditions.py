"""The renditions of a recording, for the recording-spans API: read from its master playlists
(through the archive index), never from a segment.

An ABR ladder's master playlist is tiny; once read it is kept in the index with its variants
(name, size, bandwidth, codecs), so a warm call costs one LIST of the folder and no GET. A
recording without a master playlist has no renditions: an empty list.
"""

from __future__ import annotations

from tasks.exports.spec import S3Location
from tasks.storage import ObjectStore
from workers.archive.index import ArchiveIndex
from workers.archive.locate import Locator
from workers.archive.ranges import Lookup, known_unchanged, open_index, recording_prefix, renditions_of
from workers.archive.variants import Rendition

__all__ = ["Rendition", "list_renditions"]


def list_renditions(
    store: ObjectStore, index: ArchiveIndex | None, source: S3Location, live_path: str
) -> list[Rendition]:
    """The recording's renditions, best first (the one an export without `Rendition` reads)."""
    prefix = recording_prefix(source, live_path)
    lookup = Lookup(store, source, prefix, index or open_index(store.settings, source, prefix))
    listed = lookup.listed()
    known = known_unchanged(lookup, listed, lookup.index.summaries())
    locator = Locator(listed, known, lookup.head, store.settings.archive_clock_skew_s * 1000)
    return renditions_of(lookup, locator)
