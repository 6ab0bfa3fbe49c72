"""One multipart upload, shared by the threads that upload its parts."""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tasks.storage.conditions import WriteCondition
from tasks.storage.errors import TransientStorageError, translate
from tasks.storage.objects import Uploaded


class MultipartUpload:
    """One multipart upload; parts may be uploaded in any order and from several threads."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str) -> None:
        self.client, self.bucket, self.key, self.upload_id = client, bucket, key, upload_id
        self._parts: dict[int, str] = {}
        self._lock = threading.Lock()

    def upload_part(self, number: int, data: bytes) -> None:
        try:
            response = self.client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, self.bucket, self.key) from exc
        except OSError as exc:
            raise TransientStorageError(f"s3://{self.bucket}/{self.key}: part {number}: {exc}") from exc
        with self._lock:
            self._parts[number] = response["ETag"]

    def complete(self, condition: WriteCondition | None = None) -> Uploaded:
        """Make the object visible; with a `condition`, S3 refuses (WriteConflict) when the key no
        longer holds what the writer saw when it looked."""
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in sorted(self._parts.items())]
        extra = condition.params() if condition is not None else {}
        try:
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
                **extra,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, self.bucket, self.key) from exc
        return Uploaded(etag=str(response.get("ETag", "")).strip('"'), version_id=response.get("VersionId"))

    def abort(self) -> None:
        """Best effort: a bucket lifecycle rule for incomplete uploads is the backstop."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except (ClientError, BotoCoreError):
            return
