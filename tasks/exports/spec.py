"""The export job spec: plain values that cross from the API to a worker, and its identity.

Identical requests (same user, source, range, export type and destination) must map to one
job, so the job id is a hash of exactly those fields in a canonical form.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from enum import IntEnum

# A snapshot's ExportS3Key ending in one of these (any case) is the image's own name, kept as
# given; any other key is a folder for snapshot.jpg. An export's video always ends in .mp4.
IMAGE_SUFFIXES = (".jpg", ".jpeg")


class ExportType(IntEnum):
    COPY = 0  # keep the source codec
    H264 = 1
    H265 = 2


class ErrorCode(IntEnum):
    """The export API's ErrorCode values (API contract, section 1)."""

    PROCESSING = 1
    BAD_REQUEST = 2
    AUTH = 3
    NO_MEDIA = 4
    READY = 5
    FAILED = 6
    BUSY = 7
    RESTORING = 8
    CANCELLED = 9  # cancelled by its owner (answered for RESOURCED_CANCEL_HOLD_S after the cancel)


@dataclass(frozen=True)
class S3Location:
    """A bucket in a region, and a key prefix inside it (may be empty)."""

    bucket: str
    region: str
    prefix: str = ""

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p and p.strip("/"))


@dataclass(frozen=True)
class ExportSpec:
    """Everything a worker needs to run one export; JSON-serialisable, no secrets."""

    user: str
    source: S3Location  # the `ts` storage entry
    live_path: str
    start_ms: int  # absolute position on the recording's timeline (StartPos + StartTime)
    duration_ms: int
    export_type: ExportType
    destination: S3Location  # prefix here is the S3Dir
    video_name: str  # file name inside the S3Dir, ends in .mp4
    peer_id: str = ""
    service_caller: str = ""
    writer: str = ""  # a service session's own user when it acts for `user` (see tasks/tenancy/ownership.py)
    rendition: str = ""  # an ABR ladder's rendition to read (workers/archive/variants.py); "": the best
    # A snapshot (POST /resource/v1/i/snapshot): the JPEG of the picture on screen at this
    # timeline ms, `snapshot_width` pixels wide (0: the source's width); no video is written.
    snapshot_ms: int | None = None
    snapshot_width: int = 0

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms

    @property
    def video_key(self) -> str:
        return self.destination.key(self.video_name)

    @property
    def image_key(self) -> str:
        if self.snapshot_ms is not None and self.video_name.lower().endswith(IMAGE_SUFFIXES):
            return self.destination.key(self.video_name)  # a snapshot's image named as the client gave it
        stem = self.video_name[: -len(".mp4")] if self.video_name.endswith(".mp4") else self.video_name
        return self.destination.key(f"{stem}.jpg")

    @property
    def written_keys(self) -> tuple[str, ...]:
        """The keys the job writes, claims and must own: a snapshot writes only its image."""
        if self.snapshot_ms is not None:
            return (self.image_key,)
        return (self.video_key, self.image_key)

    @property
    def needs_encoding(self) -> bool:
        return self.export_type is not ExportType.COPY

    def identity(self) -> dict[str, object]:
        """The fields that make two requests the same job."""
        found: dict[str, object] = {
            "user": self.user,
            "source": asdict(self.source),
            "live_path": self.live_path,
            "start_ms": self.start_ms,
            "duration_ms": self.duration_ms,
            "export_type": int(self.export_type),
            "destination": asdict(self.destination),
            "video_name": self.video_name,
            # Only when given: requests without it keep the job ids they always had.
            **({"rendition": self.rendition} if self.rendition else {}),
        }
        if self.snapshot_ms is not None:  # only when set: every export's job id stays as it was
            found["snapshot_ms"] = self.snapshot_ms
            found["snapshot_width"] = self.snapshot_width
        return found

    @property
    def job_id(self) -> str:
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    def to_json(self) -> str:
        data = asdict(self)
        data["export_type"] = int(self.export_type)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ExportSpec:
        data = json.loads(text)
        data["source"] = S3Location(**data["source"])
        data["destination"] = S3Location(**data["destination"])
        data["export_type"] = ExportType(data["export_type"])
        return cls(**data)


@dataclass(frozen=True)
class ExportResult:
    """What a finished export produced; URLs are made from it when a client polls."""

    bucket: str
    region: str
    s3_dir: str
    video_key: str
    image_key: str
    version: str
    exported_ms: int
    lack_ms: int
    size_bytes: int
    codec: str
    video_version_id: str = ""  # S3 VersionIds where the bucket is versioned, so URLs are pinned
    image_version_id: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ExportResult:
        return cls(**json.loads(text))
