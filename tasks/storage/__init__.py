"""The one place that talks to S3. botocore errors become this package's errors.

Both the web process (image bed, URLs) and the workers (archive reads, uploads, thumbnails) use
it, so the same key rules, retries and error mapping apply everywhere. Import from here:
`errors` (the error hierarchy), `conditions` (conditional writes), `objects` (what S3 says
about objects), `multipart` (one multipart upload), `signing` (download URLs) and `store`
(ObjectStore) are its parts.
"""

from tasks.storage.conditions import WriteCondition
from tasks.storage.errors import (
    AccessDenied,
    NoSuchBucket,
    ObjectArchived,
    ObjectNotFound,
    RefusedObject,
    StorageError,
    TooLarge,
    TransientStorageError,
    WriteConflict,
)
from tasks.storage.multipart import MultipartUpload
from tasks.storage.objects import ARCHIVE_CLASSES, ARCHIVE_TIERS, ListedObject, ObjectInfo, Uploaded
from tasks.storage.store import ObjectStore

__all__ = [
    "ARCHIVE_CLASSES",
    "ARCHIVE_TIERS",
    "AccessDenied",
    "ListedObject",
    "MultipartUpload",
    "NoSuchBucket",
    "ObjectArchived",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "RefusedObject",
    "StorageError",
    "TooLarge",
    "TransientStorageError",
    "Uploaded",
    "WriteCondition",
    "WriteConflict",
]
