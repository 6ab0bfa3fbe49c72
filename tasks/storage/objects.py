"""What S3 says about objects: a HEAD's metadata, a listing entry, an upload's result."""

from __future__ import annotations

from dataclasses import dataclass

ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})  # unreadable until restored
# Intelligent-Tiering objects that moved to its archive tiers are just as unreadable (HEAD says so
# in ArchiveStatus / x-amz-archive-status); their restore takes no Days.
ARCHIVE_TIERS = frozenset({"ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS"})


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
    last_modified: float = 0.0  # epoch seconds, as a listing gives it

    def listed(self) -> ListedObject:
        """This object as a folder listing would show it (a HEAD in place of a LIST)."""
        return ListedObject(self.key, self.etag, self.size, self.last_modified)

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
