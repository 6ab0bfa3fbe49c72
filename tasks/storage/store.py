"""ObjectStore: S3 (or an S3-compatible endpoint) behind one interface, for the web process and
the workers alike, so the same retries, ranges and error mapping apply everywhere."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tasks.platform.settings import Settings
from tasks.storage.conditions import WriteCondition
from tasks.storage.errors import ObjectNotFound, RefusedObject, TooLarge, TransientStorageError, translate
from tasks.storage.multipart import MultipartUpload
from tasks.storage.objects import ARCHIVE_TIERS, ListedObject, ObjectInfo, Uploaded
from tasks.storage.signing import UrlSigner


class ObjectStore:
    """S3 (or an S3-compatible endpoint) with one client per region, shared across threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[str, Any] = {}
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.signer = UrlSigner(settings, self.client, self._session)
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
                yield from (_listed(item) for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, bucket, prefix) from exc

    def list_slice(
        self, bucket: str, prefix: str, start_after: str, max_keys: int, region: str | None = None
    ) -> tuple[list[ListedObject], str | None]:
        """One LIST request: the objects directly under `prefix` after `start_after`, at most
        `max_keys` entries (subfolders count), and the last name that request covered (None: it
        reached the folder's end), so a caller knows which of its earlier rows the answer judges."""
        try:
            page = self.client(region).list_objects_v2(
                Bucket=bucket, Prefix=prefix, Delimiter="/", StartAfter=start_after, MaxKeys=max_keys
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, bucket, prefix) from exc
        found = [_listed(item) for item in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return found, None
        names = [o.key for o in found] + [str(p.get("Prefix", "")) for p in page.get("CommonPrefixes", [])]
        return found, max(names, default=start_after)

    def keys_from(
        self, bucket: str, prefix: str, start_after: str, region: str | None = None, page_keys: int = 1000
    ) -> Iterator[str]:
        """Keys directly under `prefix` that sort after `start_after`, in key order, `page_keys`
        per request: a caller that stops reading once past what it needs lists a slice of a
        folder, not all of it."""
        paginator = self.client(region).get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=bucket,
                Prefix=prefix,
                Delimiter="/",
                StartAfter=start_after,
                PaginationConfig={"PageSize": max(1, min(page_keys, 1000))},
            ):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, bucket, prefix) from exc

    def head(
        self, bucket: str, key: str, region: str | None = None, version_id: str | None = None
    ) -> ObjectInfo:
        """The object's metadata (with `version_id`: that version's)."""
        extra = {"VersionId": version_id} if version_id else {}
        try:
            meta = self.client(region).head_object(Bucket=bucket, Key=key, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, bucket, key) from exc
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
            last_modified=meta["LastModified"].timestamp() if meta.get("LastModified") else 0.0,
        )

    def _get(
        self,
        bucket: str,
        key: str,
        region: str | None,
        byte_range: tuple[int, int] | None,
        refuse_meta: str | None = None,
    ) -> Any:
        """GetObject, of bytes [start, end) only where a range is given; an object whose user
        metadata holds `refuse_meta` is refused (RefusedObject) before its body is read."""
        extra = {"Range": f"bytes={byte_range[0]}-{byte_range[1] - 1}"} if byte_range else {}
        response = self.client(region).get_object(Bucket=bucket, Key=key, **extra)
        if refuse_meta and refuse_meta in (response.get("Metadata") or {}):
            response["Body"].close()
            raise RefusedObject(f"s3://{bucket}/{key}: carries {refuse_meta!r} metadata")
        return response

    def get_bytes(
        self,
        bucket: str,
        key: str,
        max_bytes: int,
        region: str | None = None,
        byte_range: tuple[int, int] | None = None,
        refuse_meta: str | None = None,
    ) -> bytes:
        """The object's bytes (or bytes [start, end) of it); more than `max_bytes` is refused."""
        try:
            response = self._get(bucket, key, region, byte_range, refuse_meta)
            if int(response.get("ContentLength", 0)) > max_bytes:
                response["Body"].close()
                raise TooLarge(f"s3://{bucket}/{key} is larger than {max_bytes} bytes")
            return bytes(response["Body"].read(max_bytes + 1)[: max_bytes + 1])
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, bucket, key) from exc

    def iter_lines(
        self, bucket: str, key: str, max_line: int, region: str | None = None
    ) -> tuple[str, Iterator[str]]:
        """The object's text line by line, streamed: memory is one chunk and one line however big
        the object is (a line over `max_line` bytes raises TooLarge). Returns the ETag of the
        version being read, which may be newer than a listing's."""
        try:
            response = self._get(bucket, key, region, None)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, bucket, key) from exc
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
            raise translate(exc, bucket, key) from exc
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
            raise translate(exc, bucket, key) from exc
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
        refuse_meta: str | None = None,
    ) -> int:
        """Stream an object (or bytes [start, end) of it) to a local file, or onto its end;
        returns the bytes written. Bigger than `max_bytes` is refused."""
        try:
            response = self._get(bucket, key, region, byte_range, refuse_meta)
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
            raise translate(exc, bucket, key) from exc
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
        condition: WriteCondition | None = None,
    ) -> Uploaded:
        """PutObject; with a `condition`, S3 refuses (WriteConflict) when the key changed since."""
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": metadata or {}}
        if cache_control:
            extra["CacheControl"] = cache_control
        if condition is not None:
            extra.update(condition.params())
        try:
            response = self.client(region).put_object(Bucket=bucket, Key=key, Body=data, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, bucket, key) from exc
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
            raise translate(exc, bucket, key) from exc
        except Exception as exc:  # s3transfer wraps client errors in its own types
            raise TransientStorageError(f"s3://{bucket}/{key}: upload failed: {exc}") from exc
        return Uploaded(etag=str(meta.get("ETag", "")).strip('"'), version_id=meta.get("VersionId"))

    def write_condition(self, existing: ObjectInfo | None) -> WriteCondition | None:
        """What a write must find at a key that held `existing` (None: free) when the writer looked;
        None when conditional writes are off (an S3-compatible endpoint that rejects them)."""
        if not self.settings.s3_conditional_writes:
            return None
        return WriteCondition.free() if existing is None else WriteCondition.replacing(existing.etag)

    def look(
        self, bucket: str, key: str, region: str | None = None, version_id: str | None = None
    ) -> ObjectInfo | None:
        """HEAD, with a missing object as None: what a writer sees before it writes the key."""
        try:
            return self.head(bucket, key, region, version_id)
        except ObjectNotFound:
            return None

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
            raise translate(exc, bucket, key) from exc
        return MultipartUpload(client, bucket, key, response["UploadId"])

    def delete(
        self,
        bucket: str,
        key: str,
        region: str | None = None,
        version_id: str | None = None,
        if_match: str | None = None,
    ) -> None:
        """Delete the object, or with `version_id` exactly that version (a versioned bucket); with
        `if_match`, only while the key still holds the object with that ETag (WriteConflict
        otherwise: S3's conditional DELETE)."""
        extra: dict[str, str] = {"VersionId": version_id} if version_id else {}
        if if_match:
            extra["IfMatch"] = f'"{if_match}"'
        try:
            self.client(region).delete_object(Bucket=bucket, Key=key, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, bucket, key) from exc

    def version_ids(self, bucket: str, key: str, region: str | None = None) -> list[str]:
        """Every version of exactly this key, newest first ("null" for the object of a bucket that
        never kept versions); delete markers are not versions of anything."""
        found: list[str] = []
        try:
            pages = (
                self.client(region).get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key)
            )
            for page in pages:
                found += [str(v["VersionId"]) for v in page.get("Versions", []) if v["Key"] == key]
                if any(v["Key"] > key for v in page.get("Versions", [])):
                    break  # past the key: the rest are other keys that begin with it
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, bucket, key) from exc
        return found

    def restore(self, bucket: str, key: str, days: int, tier: str, region: str | None = None) -> None:
        request: dict[str, Any] = {"Days": days, "GlacierJobParameters": {"Tier": tier}}
        if self.head(bucket, key, region).archive_status in ARCHIVE_TIERS:
            request = {"GlacierJobParameters": {"Tier": tier}}  # moves back to a frequent tier: no Days
        client = self.client(region)
        _tolerating(
            "RestoreAlreadyInProgress",  # someone asked already: the same restore is under way
            lambda: client.restore_object(Bucket=bucket, Key=key, RestoreRequest=request),
            bucket,
            key,
        )

    def pending_multipart_uploads(
        self, bucket: str, prefix: str = "", region: str | None = None
    ) -> list[str]:
        return [key for key, _ in self._uploads(bucket, prefix, region)]

    def _uploads(self, bucket: str, prefix: str, region: str | None) -> list[tuple[str, str]]:
        try:
            response = self.client(region).list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, bucket, prefix) from exc
        return [(u["Key"], u["UploadId"]) for u in response.get("Uploads", [])]

    def abort_upload(self, bucket: str, key: str, upload_id: str, region: str | None = None) -> None:
        """Abort one multipart upload by its UploadId. Afterwards it can never be completed; one
        that is already gone (completed or aborted before) is fine. Other failures raise."""
        client = self.client(region)
        _tolerating(
            "NoSuchUpload",
            lambda: client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id),
            bucket,
            key,
        )

    def _session(self, region: str | None) -> Any | None:
        """The boto3 session behind a region's client (its credentials may expire)."""
        self.client(region)
        with self._lock:
            return self._sessions.get(region or self.settings.aws_region)

    def url(self, bucket: str, key: str, region: str | None = None, version_id: str | None = None) -> str:
        """A URL that downloads the object (with `version_id`: exactly that version)."""
        return self.signer.url(bucket, key, region, version_id)

    def credentials_left_s(self, region: str | None = None) -> float | None:
        return self.signer.credentials_left_s(region)


def _tolerating(code: str, call: Callable[[], object], bucket: str, key: str) -> None:
    """Make one S3 call for its effect; the error `code` means the effect is already there."""
    try:
        call()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == code:
            return
        raise translate(exc, bucket, key) from exc
    except BotoCoreError as exc:
        raise translate(exc, bucket, key) from exc


def _listed(item: dict[str, Any]) -> ListedObject:
    """A LIST entry as the archive code compares them (ETag without its quotes, epoch seconds)."""
    modified = item.get("LastModified")
    return ListedObject(
        key=item["Key"],
        etag=str(item.get("ETag", "")).strip('"'),
        size=int(item.get("Size", 0)),
        last_modified=modified.timestamp() if modified is not None else 0.0,
    )
