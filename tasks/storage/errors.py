"""S3 failures as this project's errors: botocore's ClientError codes and statuses become a
small hierarchy that callers can act on (retry, refuse, restore first)."""

from __future__ import annotations

from botocore.exceptions import ClientError


class StorageError(RuntimeError):
    """Any S3 failure."""


class TransientStorageError(StorageError):
    """S3 failed in a way that retrying later may fix (5xx, throttling, network)."""


class ObjectNotFound(StorageError, FileNotFoundError):
    pass


class NoSuchBucket(ObjectNotFound):
    """The bucket itself does not exist: a request naming it is at fault, not the service."""

    def __init__(self, message: str, bucket: str) -> None:
        super().__init__(message)
        self.bucket = bucket


class AccessDenied(StorageError, PermissionError):
    pass


class ObjectArchived(StorageError):
    """The object is in an archival storage class and must be restored first."""


class TooLarge(StorageError):
    pass


class RefusedObject(StorageError):
    """The object carries metadata its reader must not accept (an export's output met where a
    recorder's segment should be)."""


class WriteConflict(StorageError):
    """A conditional write was refused (412 PreconditionFailed, 409 ConditionalRequestConflict):
    the key no longer holds what the writer saw when it looked, so another writer got there first.
    Never retried: the writer is stale (fenced off) or the key is someone else's now."""


CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


def translate(exc: Exception, bucket: str, key: str) -> StorageError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        where = f"s3://{bucket}/{key}"
        if code in CONFLICT_CODES or status == 412:  # before the generic 4xx below
            return WriteConflict(f"{where}: conditional write refused ({code or status})")
        if code == "InvalidObjectState":  # S3 sends it with HTTP 403: check it before access
            return ObjectArchived(f"{where}: in archival storage, restore it first")
        if code == "NoSuchBucket":
            return NoSuchBucket(f"s3://{bucket}: no such bucket", bucket)
        if code in {"NoSuchKey", "404", "NotFound", "NoSuchVersion"} or status == 404:
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
