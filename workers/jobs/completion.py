"""Completing an export job's upload under its fence: the last look before a completion, what a
refused conditional completion means, and the one-part upload of a JPEG beside the job's output
(an export's poster, a snapshot's still), so both are recorded, fenced and owned alike."""

from __future__ import annotations

import logging

from tasks.exports.spec import ErrorCode, ExportSpec
from tasks.storage import ObjectStore, StorageError, Uploaded, WriteCondition, WriteConflict
from tasks.tenancy import ownership
from tasks.tenancy.images import CACHE_CONTROL, ImageStore
from workers.errors import ExportError
from workers.jobs.fencing import Fence, adopted, completion_failed

log = logging.getLogger(__name__)


def last_look(store: ObjectStore, spec: ExportSpec, fence: Fence) -> None:
    """Right before a CompleteMultipartUpload: the keys are still this user's to write (an image-bed
    upload or another writer may have taken one since the first look, minutes ago; the upload is
    then aborted and the job fails with AUTH), and the attempt still holds the job (the fence)."""
    if (refused := ownership.export_refusal(store, spec)) is not None:
        raise ExportError(ErrorCode.AUTH, refused)
    fence.check()


def refused_write(
    fence: Fence, store: ObjectStore, bucket: str, key: str, region: str, mark: str
) -> Uploaded:
    """S3 refused a conditional completion: the key no longer holds what this attempt saw when it
    looked. A newer attempt of the job wrote it (LeaseLost, raised here), or another writer did:
    not this export's to overwrite (AUTH, as when the last look finds it). One case is ours after
    all: botocore retried a completion whose first answer was lost, and the key holds the object
    it completed (this admission's mark, the rule `adopted` follows): that object is the answer."""
    completion_failed(fence)
    info = store.look(bucket, key, region)
    if info is not None and mark and info.metadata.get(ownership.JOB_META) == mark:
        log.warning(
            "conditional completion refused, but the key holds this export's object", extra={"key": key}
        )
        return Uploaded(etag=info.etag, version_id=info.version_id)
    raise ExportError(
        ErrorCode.AUTH, f"forbidden: s3://{bucket}/{key}: written by another writer during the export"
    )


def looked_at(store: ObjectStore, bucket: str, key: str, region: str) -> WriteCondition | None:
    """What the key holds now, as the condition its completion must meet (None: conditions off)."""
    return store.write_condition(store.look(bucket, key, region))


def upload_jpeg(store: ObjectStore, spec: ExportSpec, jpeg: bytes, fence: Fence, mark: str) -> Uploaded:
    """The JPEG at the job's image key, owned as the image bed would own it. Sent as a one-part
    multipart upload so that, like a video, it is recorded on the job before it is sent and
    completed only under the fence, and only if the key still holds what it held when this
    attempt looked (S3 conditional writes, RESOURCED_S3_CONDITIONAL_WRITES); an earlier attempt's
    completed image (same `mark`) is adopted. An export's poster and a snapshot alike."""
    dest = spec.destination
    key = ImageStore(store, dest.bucket, dest.region).ref(dest.prefix, spec.image_key.rsplit("/", 1)[-1]).key
    earlier = adopted(fence, store, dest.bucket, key, dest.region, mark)
    if earlier is not None:
        return earlier
    condition = looked_at(store, dest.bucket, key, dest.region)
    metadata = {**ownership.export_writer(spec).metadata, ownership.JOB_META: mark}
    upload = store.start_multipart(dest.bucket, key, "image/jpeg", dest.region, metadata, CACHE_CONTROL)
    try:
        fence.record_upload(dest.bucket, key, dest.region, upload.upload_id)
        upload.upload_part(1, jpeg)
        last_look(store, spec, fence)
        return upload.complete(condition)
    except WriteConflict:
        upload.abort()
        return refused_write(fence, store, dest.bucket, key, dest.region, mark)
    except StorageError:
        upload.abort()
        completion_failed(fence)
        raise
    except BaseException:
        upload.abort()
        raise
