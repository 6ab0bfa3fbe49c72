"""The one place that talks to S3. botocore errors become this module's errors.

Both the web process (image bed) and the workers (archive reads, uploads, thumbnails) use it,
so the same key rules, retries and error mapping apply everywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tasks.settings import Settings

URL_CACHE_SIZE = 10_000
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})  # unreadable until restored
# Intelligent-Tiering objects that moved to its archive tiers are just as unreadable (HEAD says so
# in ArchiveStatus / x-amz-archive-status); their restore takes no Days.
ARCHIVE_TIERS = frozenset({"ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS"})
SIGNING_MARGIN_S = 60  # a URL is never handed out for the last minute of its credentials


class StorageError(RuntimeError):
    """Any S3 failure."""


class TransientStorageError(StorageError):
    """S3 failed in a way that retrying later may fix (5xx, throttling, network)."""


class ObjectNotFound(StorageError, FileNotFoundError):
    pass


class AccessDenied(StorageError, PermissionError):
    pass


class ObjectArchived(StorageError):
    """The object is in an archival storage class and must be restored first."""


class TooLarge(StorageError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    storage_class: str
    restore: str  # S3's x-amz-restore header: ongoing-request="true"/"false", ...
    metadata: dict[str, str]
    content_type: str
    version_id: str | None
    archive_status: str = ""  # Intelligent-Tiering only: ARCHIVE_ACCESS or DEEP_ARCHIVE_ACCESS

    @property
    def archived(self) -> bool:
        in_archive = self.storage_class in ARCHIVE_CLASSES or self.archive_status in ARCHIVE_TIERS
        return in_archive and 'ongoing-request="false"' not in self.restore

    @property
    def restore_in_progress(self) -> bool:
        return 'ongoing-request="true"' in self.restore


@dataclass(frozen=True)
class ListedObject:
    """One entry of a folder listing: enough to tell a changed object from an unchanged one."""

    key: str
    etag: str
    size: int
    last_modified: float  # epoch seconds


@dataclass(frozen=True)
class Uploaded:
    etag: str
    version_id: str | None

    @property
    def version(self) -> str:
        """The VersionId in a versioned bucket, else the ETag ("null" is S3's "no version")."""
        return self.version_id if self.version_id and self.version_id != "null" else self.etag


def _translate(exc: Exception, bucket: str, key: str) -> StorageError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        where = f"s3://{bucket}/{key}"
        if code == "InvalidObjectState":  # S3 sends it with HTTP 403: check it before access
            return ObjectArchived(f"{where}: in archival storage, restore it first")
        if code in {"NoSuchKey", "404", "NotFound", "NoSuchBucket", "NoSuchVersion"} or status == 404:
            return ObjectNotFound(f"{where}: not found ({code})")
        if code in {"AccessDenied", "403", "AllAccessDisabled"} or status == 403:
            return AccessDenied(f"{where}: access denied")
        if (
            status is not None
            and int(status) < 500
            and code not in {"SlowDown", "RequestTimeout", "Throttling"}
        ):
            return StorageError(f"{where}: {code or status}: {exc}")
        return TransientStorageError(f"{where}: {code or status}: {exc}")
    return TransientStorageError(f"s3://{bucket}/{key}: {exc}")


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
            raise _translate(exc, self.bucket, self.key) from exc
        except OSError as exc:
            raise TransientStorageError(f"s3://{self.bucket}/{self.key}: part {number}: {exc}") from exc
        with self._lock:
            self._parts[number] = response["ETag"]

    def complete(self) -> Uploaded:
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in sorted(self._parts.items())]
        try:
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, self.bucket, self.key) from exc
        return Uploaded(etag=str(response.get("ETag", "")).strip('"'), version_id=response.get("VersionId"))

    def abort(self) -> None:
        """Best effort: a bucket lifecycle rule for incomplete uploads is the backstop."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except (ClientError, BotoCoreError):
            return


class ObjectStore:
    """S3 (or an S3-compatible endpoint) with one client per region, shared across threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[str, Any] = {}
        self._sessions: dict[str, Any] = {}
        self._urls: dict[tuple[str, str, str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._config = Config(
            retries={"max_attempts": settings.s3_max_attempts, "mode": "adaptive"},  # 5xx and throttling
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=32,
            signature_version="s3v4",
            s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
        )

    def client(self, region: str | None = None) -> Any:
        region = region or self.settings.aws_region
        with self._lock:
            if region not in self._clients:
                session = boto3.session.Session()
                self._sessions[region] = session
                self._clients[region] = session.client(
                    "s3",
                    region_name=region,
                    endpoint_url=self.settings.s3_endpoint_url,
                    config=self._config,
                )
            return self._clients[region]

    def list_keys(self, bucket: str, prefix: str, region: str | None = None) -> Iterator[str]:
        """Keys directly under `prefix` (one folder level), never the whole bucket."""
        return (item.key for item in self.list_objects(bucket, prefix, region))

    def list_objects(self, bucket: str, prefix: str, region: str | None = None) -> Iterator[ListedObject]:
        """Objects directly under `prefix` (one folder level) with their ETag, size and time."""
        paginator = self.client(region).get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                for item in page.get("Contents", []):
                    modified = item.get("LastModified")
                    yield ListedObject(
                        key=item["Key"],
                        etag=str(item.get("ETag", "")).strip('"'),
                        size=int(item.get("Size", 0)),
                        last_modified=modified.timestamp() if modified is not None else 0.0,
                    )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, bucket, prefix) from exc

    def head(self, bucket: str, key: str, region: str | None = None) -> ObjectInfo:
        try:
            meta = self.client(region).head_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, bucket, key) from exc
        return ObjectInfo(
            key=key,
            size=int(meta.get("ContentLength", 0)),
            etag=str(meta.get("ETag", "")).strip('"'),
            storage_class=str(meta.get("StorageClass", "STANDARD")),
            restore=str(meta.get("Restore", "")),
            metadata={k.lower(): v for k, v in meta.get("Metadata", {}).items()},
            content_type=str(meta.get("ContentType", "")),
            version_id=meta.get("VersionId"),
            archive_status=str(meta.get("ArchiveStatus", "")),
        )

    def _get(self, bucket: str, key: str, region: str | None, byte_range: tuple[int, int] | None) -> Any:
        """GetObject, of bytes [start, end) only where a range is given."""
        extra = {"Range": f"bytes={byte_range[0]}-{byte_range[1] - 1}"} if byte_range else {}
        return self.client(region).get_object(Bucket=bucket, Key=key, **extra)

    def get_bytes(
        self,
        bucket: str,
        key: str,
        max_bytes: int,
        region: str | None = None,
        byte_range: tuple[int, int] | None = None,
    ) -> bytes:
        """The object's bytes (or bytes [start, end) of it); more than `max_bytes` is refused."""
        try:
            response = self._get(bucket, key, region, byte_range)
            if int(response.get("ContentLength", 0)) > max_bytes:
                response["Body"].close()
                raise TooLarge(f"s3://{bucket}/{key} is larger than {max_bytes} bytes")
            return bytes(response["Body"].read(max_bytes + 1)[: max_bytes + 1])
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, bucket, key) from exc

    def iter_lines(
        self, bucket: str, key: str, max_line: int, region: str | None = None
    ) -> tuple[str, Iterator[str]]:
        """The object's text line by line, streamed: memory is one chunk and one line however big
        the object is (a line over `max_line` bytes raises TooLarge). Returns the ETag of the
        version being read, which may be newer than a listing's."""
        try:
            response = self._get(bucket, key, region, None)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, bucket, key) from exc
        etag = str(response.get("ETag", "")).strip('"')
        return etag, self._lines(response["Body"], bucket, key, max_line)

    def _lines(self, body: Any, bucket: str, key: str, max_line: int) -> Iterator[str]:
        pending = b""
        try:
            for chunk in body.iter_chunks(64 * 1024):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if len(pending) > max_line:
                    raise TooLarge(f"s3://{bucket}/{key}: a line longer than {max_line} bytes")
                for line in lines:
                    yield line.rstrip(b"\r").decode("utf-8", "replace")
            if pending:
                yield pending.rstrip(b"\r").decode("utf-8", "replace")
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, bucket, key) from exc
        except OSError as exc:  # a connection cut mid-body
            raise TransientStorageError(f"s3://{bucket}/{key}: read failed: {exc}") from exc
        finally:
            body.close()

    def open_stream(
        self, bucket: str, key: str, region: str | None = None
    ) -> tuple[BinaryIO, dict[str, Any]]:
        """A streaming body and the response headers, for proxying without buffering."""
        try:
            response = self.client(region).get_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, bucket, key) from exc
        return response["Body"], response

    def download(
        self,
        bucket: str,
        key: str,
        path: Path,
        max_bytes: int,
        region: str | None = None,
        byte_range: tuple[int, int] | None = None,
        append: bool = False,
    ) -> int:
        """Stream an object (or bytes [start, end) of it) to a local file, or onto its end;
        returns the bytes written. Bigger than `max_bytes` is refused."""
        try:
            response = self._get(bucket, key, region, byte_range)
            if int(response.get("ContentLength", 0)) > max_bytes:
                response["Body"].close()
                raise TooLarge(f"s3://{bucket}/{key} is larger than {max_bytes} bytes")
            size = 0
            with path.open("ab" if append else "wb") as handle:
                for chunk in response["Body"].iter_chunks(1024 * 1024):
                    handle.write(chunk)
                    size += len(chunk)
            return size
        except (ClientError, BotoCoreError) as exc:
            path.unlink(missing_ok=True)
            raise _translate(exc, bucket, key) from exc
        except OSError as exc:  # a connection cut mid-body surfaces as urllib3's OSError subclasses
            path.unlink(missing_ok=True)
            raise TransientStorageError(f"s3://{bucket}/{key}: read failed: {exc}") from exc

    def put_bytes(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str] | None = None,
        region: str | None = None,
        cache_control: str | None = None,
    ) -> Uploaded:
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": metadata or {}}
        if cache_control:
            extra["CacheControl"] = cache_control
        try:
            response = self.client(region).put_object(Bucket=bucket, Key=key, Body=data, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, bucket, key) from exc
        return Uploaded(etag=str(response.get("ETag", "")).strip('"'), version_id=response.get("VersionId"))

    def upload_file(
        self,
        path: Path,
        bucket: str,
        key: str,
        content_type: str,
        region: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Uploaded:
        """Parallel multipart upload; a failure aborts the multipart upload, leaving nothing."""
        part = self.settings.upload_part_mib * 1024 * 1024
        config = TransferConfig(
            multipart_threshold=part,
            multipart_chunksize=part,
            max_concurrency=self.settings.upload_concurrency,
            use_threads=True,
        )
        client = self.client(region)
        try:
            client.upload_file(
                str(path),
                bucket,
                key,
                ExtraArgs={"ContentType": content_type, "Metadata": metadata or {}},
                Config=config,
            )
            meta = client.head_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, bucket, key) from exc
        except Exception as exc:  # s3transfer wraps client errors in its own types
            raise TransientStorageError(f"s3://{bucket}/{key}: upload failed: {exc}") from exc
        return Uploaded(etag=str(meta.get("ETag", "")).strip('"'), version_id=meta.get("VersionId"))

    def start_multipart(
        self,
        bucket: str,
        key: str,
        content_type: str,
        region: str | None = None,
        metadata: dict[str, str] | None = None,
        cache_control: str | None = None,
    ) -> MultipartUpload:
        client = self.client(region)
        extra: dict[str, Any] = {"Metadata": metadata or {}}
        if cache_control:
            extra["CacheControl"] = cache_control
        try:
            response = client.create_multipart_upload(
                Bucket=bucket, Key=key, ContentType=content_type, **extra
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, bucket, key) from exc
        return MultipartUpload(client, bucket, key, response["UploadId"])

    def delete(self, bucket: str, key: str, region: str | None = None) -> None:
        try:
            self.client(region).delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, bucket, key) from exc

    def restore(self, bucket: str, key: str, days: int, tier: str, region: str | None = None) -> None:
        request: dict[str, Any] = {"Days": days, "GlacierJobParameters": {"Tier": tier}}
        if self.head(bucket, key, region).archive_status in ARCHIVE_TIERS:
            request = {"GlacierJobParameters": {"Tier": tier}}  # moves back to a frequent tier: no Days
        try:
            self.client(region).restore_object(Bucket=bucket, Key=key, RestoreRequest=request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "RestoreAlreadyInProgress":
                return
            raise _translate(exc, bucket, key) from exc
        except BotoCoreError as exc:
            raise _translate(exc, bucket, key) from exc

    def pending_multipart_uploads(
        self, bucket: str, prefix: str = "", region: str | None = None
    ) -> list[str]:
        return [key for key, _ in self._uploads(bucket, prefix, region)]

    def _uploads(self, bucket: str, prefix: str, region: str | None) -> list[tuple[str, str]]:
        try:
            response = self.client(region).list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, bucket, prefix) from exc
        return [(u["Key"], u["UploadId"]) for u in response.get("Uploads", [])]

    def abort_upload(self, bucket: str, key: str, upload_id: str, region: str | None = None) -> None:
        """Abort one multipart upload by its UploadId. Afterwards it can never be completed; one
        that is already gone (completed or aborted before) is fine. Other failures raise."""
        try:
            self.client(region).abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return
            raise _translate(exc, bucket, key) from exc
        except BotoCoreError as exc:
            raise _translate(exc, bucket, key) from exc

    def url(self, bucket: str, key: str, region: str | None = None, version_id: str | None = None) -> str:
        """A URL that downloads the object (with `version_id`: exactly that version): under the
        public base URL, or presigned.

        Presigning costs ~0.5 ms of HMAC work, and clients poll a ready job repeatedly, so a
        presigned URL is reused for the first half of its lifetime. A URL lives no longer than
        the credentials that sign it (instance roles and IRSA hand out expiring ones), and is
        never reused past them either."""
        if version_id == "null":
            version_id = None  # S3's name for "no version": the bucket is not versioned
        if self.settings.public_base_url:
            pinned = f"?versionId={quote(version_id, safe='')}" if version_id else ""
            return f"{self.settings.public_base_url}/{bucket}/{key}{pinned}"
        now = time.monotonic()
        cache_key = (bucket, key, region or "", version_id or "")
        with self._lock:
            cached = self._urls.get(cache_key)
        if cached is not None and cached[1] > now:
            return cached[0]
        client = self.client(region)
        lifetime = float(self.settings.presign_ttl_s)
        credentials_left = self.credentials_left_s(region)
        if credentials_left is not None:
            lifetime = max(1.0, min(lifetime, credentials_left))
        url = str(
            client.generate_presigned_url(
                "get_object",
                Params={"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})},
                ExpiresIn=int(lifetime),
            )
        )
        reuse = lifetime / 2
        if credentials_left is not None:
            reuse = min(reuse, credentials_left - SIGNING_MARGIN_S)
        if reuse > 0:
            with self._lock:
                if len(self._urls) >= URL_CACHE_SIZE:
                    self._urls.clear()
                self._urls[cache_key] = (url, now + reuse)
        return url

    def credentials_left_s(self, region: str | None = None) -> float | None:
        """Seconds until the signing credentials expire; None for credentials that do not
        (static keys). botocore refreshes expiring ones before signing, so this is read after."""
        self.client(region)
        with self._lock:
            session = self._sessions.get(region or self.settings.aws_region)
        credentials = session.get_credentials() if session is not None else None
        if credentials is None:
            return None
        credentials.get_frozen_credentials()  # refreshes them first when they are about to expire
        expiry = getattr(credentials, "_expiry_time", None)  # RefreshableCredentials only
        if expiry is None:
            return None
        return float((expiry - datetime.now(UTC)).total_seconds())
