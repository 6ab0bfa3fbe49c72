"""Uploading a finished file as one multipart upload whose UploadId the caller learns first.

s3transfer's own upload_file never says which UploadId it started, so a job could not record
it, a newer attempt could not abort it, and a frozen attempt could complete it after a takeover.
Here `on_started(upload_id)` runs before any part is sent and `before_complete()` right before
CompleteMultipartUpload (the fence's last check), which carries the writer's `condition`; any
failure aborts the upload, so no half object is ever visible. Parts are read from disk as they
are sent: at most `concurrency` parts are in memory at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from tasks.storage import MultipartUpload, ObjectStore, Uploaded, WriteCondition

MIB = 1024 * 1024
MIN_PART_BYTES = 5 * MIB  # S3's minimum for every part but the last
MAX_PARTS = 10_000  # S3's maximum part count: a huge file gets larger parts instead


def part_size(file_bytes: int, part_bytes: int) -> int:
    return max(part_bytes, MIN_PART_BYTES, -(-file_bytes // MAX_PARTS))


def upload_file_in_parts(
    store: ObjectStore,
    bucket: str,
    key: str,
    region: str,
    path: Path,
    content_type: str,
    part_bytes: int,
    concurrency: int,
    metadata: dict[str, str] | None = None,
    on_started: Callable[[str], None] = lambda upload_id: None,
    before_complete: Callable[[], None] = lambda: None,
    condition: WriteCondition | None = None,
) -> Uploaded:
    size = path.stat().st_size
    step = part_size(size, part_bytes)
    upload = store.start_multipart(bucket, key, content_type, region, metadata)
    try:
        on_started(upload.upload_id)
        _send_parts(upload, path, size, step, max(1, concurrency))
        before_complete()
        return upload.complete(condition)
    except BaseException:
        upload.abort()
        raise


def _send_parts(upload: MultipartUpload, path: Path, size: int, step: int, concurrency: int) -> None:
    fd = os.open(path, os.O_RDONLY)

    def send(number: int, offset: int) -> None:
        upload.upload_part(number, os.pread(fd, min(step, size - offset), offset))

    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="upload") as pool:
            pending: set[Future[None]] = set()
            offsets = range(0, max(size, 1), step)  # an empty file is still one (empty) part
            for number, offset in enumerate(offsets, start=1):
                if len(pending) >= concurrency:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()  # the first failure stops the loop (and the upload)
                pending.add(pool.submit(send, number, offset))
            for future in pending:
                future.result()
    finally:
        os.close(fd)
