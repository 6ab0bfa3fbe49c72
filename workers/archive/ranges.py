"""The archive index: which segments of a recording cover a time range.

Reads only the playlists directly under the recording's folder, never a listing of the
whole bucket, and never a segment the range does not need.
"""

from __future__ import annotations

import logging

from tasks.jobs import S3Location
from tasks.storage import ObjectNotFound, ObjectStore, TooLarge
from workers.archive.playlists import (
    MAX_PLAYLIST_BYTES,
    PlaylistError,
    Segment,
    covering,
    merge_timelines,
    parse_playlist,
)

log = logging.getLogger(__name__)


def recording_prefix(source: S3Location, live_path: str) -> str:
    return source.key(live_path)


def load_timeline(store: ObjectStore, source: S3Location, live_path: str) -> list[Segment]:
    """Every segment of every media playlist of the recording, on one timeline."""
    prefix = recording_prefix(source, live_path)
    playlists: list[list[Segment]] = []
    for key in store.list_keys(source.bucket, prefix + "/", source.region):
        if not key.endswith(".m3u8"):
            continue
        try:
            text = store.get_bytes(source.bucket, key, MAX_PLAYLIST_BYTES, source.region)
            playlists.append(parse_playlist(text.decode("utf-8", "replace"), key, prefix))
        except ObjectNotFound:
            continue  # deleted between listing and reading
        except (PlaylistError, TooLarge) as exc:
            # Other storage errors propagate: a transient one is retried rather than exported as a hole.
            log.warning("skipping playlist", extra={"playlist": key, "reason": str(exc)})
    return merge_timelines(playlists)


def segments_for_range(
    store: ObjectStore, source: S3Location, live_path: str, start_ms: float, end_ms: float
) -> list[Segment]:
    return covering(load_timeline(store, source, live_path), start_ms, end_ms)
