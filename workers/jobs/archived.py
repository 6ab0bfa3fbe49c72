"""Which of a job's segments wait in archival storage: what a restore must bring back before an
export or a snapshot can read them (ErrorCode 8, then the job parks)."""

from __future__ import annotations

from tasks.exports.spec import ExportSpec
from tasks.storage import ObjectNotFound, ObjectStore
from workers.archive.model import Segment


def archived_keys(store: ObjectStore, spec: ExportSpec, segments: list[Segment]) -> list[str]:
    """The range's segments that sit in archival storage and are not restored."""
    keys: list[str] = []
    for segment in segments:
        try:
            if store.head(spec.source.bucket, segment.key, spec.source.region).archived:
                keys.append(segment.key)
        except ObjectNotFound:
            continue
    return keys
