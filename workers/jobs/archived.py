"""Which objects a job reads wait in archival storage: what a restore must bring back before an
export or a snapshot can read them (ErrorCode 8, then the job parks)."""

from __future__ import annotations

from tasks.exports.spec import ErrorCode, ExportSpec
from tasks.storage import ObjectNotFound, ObjectStore
from workers.archive.model import Segment
from workers.errors import ExportError, SegmentsArchived


def archived_keys(store: ObjectStore, spec: ExportSpec, segments: list[Segment]) -> list[str]:
    """The objects reading the segments needs that sit in archival storage and are not restored:
    the segments, their fMP4 initialization sections and their AES-128 key objects, once each."""
    needed = {key for s in segments for key in (s.key, s.init_key, s.aes_key) if key}
    keys: list[str] = []
    for key in sorted(needed):
        try:
            if store.head(spec.source.bucket, key, spec.source.region).archived:
                keys.append(key)
        except ObjectNotFound:
            continue
    return keys


def restore_first(store: ObjectStore, spec: ExportSpec, segments: list[Segment]) -> ExportError:
    """What a job that met an archived object raises: SegmentsArchived with what to restore (the
    job parks, restores start), or, where none of the objects it reads is archived any more
    (restored meanwhile, or the archived one is not among them), a failure to retry: parking
    with nothing to restore would wait out RESOURCED_RESTORE_WAIT for nothing."""
    keys = archived_keys(store, spec, segments)
    if keys:
        return SegmentsArchived(keys)
    return ExportError(
        ErrorCode.FAILED, "an object of the recording was in archival storage; retry the request"
    )
