"""Who may write an S3 key: the one rule for export videos, poster frames and image-bed images.

Every object the service writes carries two metadata entries: `owner`, the user it was written
for, and `writer`, the session user that wrote it (the same user, or an internal service
caller acting for that user). A write is allowed when the key is free, when its owner is the
user the write is for, or when the caller is a service session and the object's `writer` is
that same service user ("objects it wrote"). An object without `owner` was not written by this
service (a recording's segment or playlist, another system's file) and is nobody's to replace
or delete. The check runs before any byte is written, so a refused write changes nothing.

Until an export's objects exist, its keys are claimed in Redis by the admission script itself
(tasks/exports/scripts.py ADMIT: the same metadata plus the jobs holding the claim, each by its
admission token), so a second user's export cannot start while the first is still uploading,
and so cannot abort the first one's multipart upload. A claim is given back by its holder only,
when its job ends; identical requests share one job and so one hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

from tasks.exports.spec import ExportSpec
from tasks.platform import keys
from tasks.storage import ObjectInfo, ObjectStore

OWNER_META = "owner"
WRITER_META = "writer"
# Every export object (video and poster) also names the job admission that wrote it, and from
# what; a name no recorder or other system writes, so its presence says "an export wrote this".
JOB_META = "resourced-job"


class NotOwner(PermissionError):
    """The key holds an object the caller may not replace or delete."""


@dataclass(frozen=True)
class Writer:
    """Who writes: `owner` the user the object is for; `service` the internal caller acting for it."""

    owner: str
    service: str = ""  # a service session's own user, when one acts for `owner`

    @property
    def metadata(self) -> dict[str, str]:
        return {OWNER_META: self.owner, WRITER_META: self.service or self.owner}


def refusal(existing: Mapping[str, str] | None, writer: Writer) -> str | None:
    """Why `writer` may not replace an object with metadata `existing` (None: the key is free)."""
    if existing is None:
        return None
    owner = existing.get(OWNER_META)
    if not owner:
        return "the key holds an object this service did not write"
    if owner == writer.owner:
        return None
    if writer.service and existing.get(WRITER_META) == writer.service:
        return None  # an internal caller replacing what it wrote itself
    return "the key holds an object that belongs to another user"


def may_delete(existing: Mapping[str, str], user: str, service: bool) -> bool:
    """The owner may delete; a service session may delete anything the service wrote, never an
    object without an owner (it is not the service's to remove)."""
    owner = existing.get(OWNER_META)
    return bool(owner) and (owner == user or service)


def existing_metadata(store: ObjectStore, bucket: str, key: str, region: str | None) -> dict[str, str] | None:
    info = store.look(bucket, key, region)
    return None if info is None else info.metadata


def check_writable(
    store: ObjectStore,
    bucket: str,
    keys: Iterable[str],
    region: str | None,
    writer: Writer,
    seen: Mapping[str, ObjectInfo | None] | None = None,
) -> None:
    """Raise NotOwner naming the first key `writer` may not write; HEADs only, writes nothing.
    `seen`: keys the caller has just looked at (their ObjectInfo, None when free), not HEADed again."""
    for key in keys:
        if seen is not None and key in seen:
            info = seen[key]
            reason = refusal(None if info is None else info.metadata, writer)
        else:
            reason = refusal(existing_metadata(store, bucket, key, region), writer)
        if reason is not None:
            raise NotOwner(f"s3://{bucket}/{key}: {reason}")


def export_writer(spec: ExportSpec) -> Writer:
    return Writer(owner=spec.user, service=spec.writer)


def export_refusal(
    store: ObjectStore, spec: ExportSpec, seen: Mapping[str, ObjectInfo | None] | None = None
) -> str | None:
    """Why this export may not write its video and poster keys, or None; for the API's admission,
    the worker's look before its uploads start, and its last look before each one completes.
    `seen`: keys the caller has just looked at, judged from that look instead of another HEAD."""
    dest = spec.destination
    try:
        check_writable(store, dest.bucket, spec.written_keys, dest.region, export_writer(spec), seen)
    except NotOwner as exc:
        return f"forbidden: {exc}"
    return None


def _claimed(raw: bytes | str | None) -> dict[str, str] | None:
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return {}  # unreadable: treat as held by someone, never as free
    if not isinstance(value, dict):
        return None if value is None else {}
    return {k: str(value[k]) for k in (OWNER_META, WRITER_META) if k in value}


def destination_claim(client: redis.Redis, bucket: str, key: str) -> dict[str, str] | None:
    """The writer metadata of the export that claimed s3://bucket/key (None: unclaimed), for a
    writer that is not an export (the image bed) to pass to `refusal` before it writes the key."""
    return _claimed(client.get(keys.destination_claim(bucket, key)))


def claim_holders(client: redis.Redis, bucket: str, key: str) -> dict[str, str]:
    """job id -> admission token of every job holding the claim on s3://bucket/key ({} if none)."""
    raw = client.get(keys.destination_claim(bucket, key))
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    holders = value.get("holders") if isinstance(value, dict) else None
    return {str(k): str(v) for k, v in holders.items()} if isinstance(holders, dict) else {}
