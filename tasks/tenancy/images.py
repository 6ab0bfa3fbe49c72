"""Image storage: the image bed's uploads and the export's poster frames follow one set of key
rules and record their owner the same way.

An image lives at {prefix}/{path}/{filename} in its bucket, stored exactly as uploaded, with
its owner in the object's metadata (who may write is decided in tasks/tenancy/ownership.py). Writes to
one key are serialised with a Redis lock, so two uploads of the same name never interleave an
ownership check with the other's write, and a key another user's export has claimed (it is
about to write its video or poster there) is refused as if that export's object were there.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import redis

from tasks.platform import keys
from tasks.storage import ObjectInfo, ObjectNotFound, ObjectStore, Uploaded
from tasks.tenancy.objectkeys import MAX_KEY_BYTES, MAX_SEGMENT_BYTES, UnsafeKey, safe_name, safe_path
from tasks.tenancy.ownership import (
    OWNER_META,
    NotOwner,
    Writer,
    destination_claim,
    existing_metadata,
    may_delete,
    refusal,
)

__all__ = ["Busy", "ImageRef", "ImageStore", "NotOwner", "default_filename"]
CACHE_CONTROL = "public, max-age=300"  # a name can be re-uploaded by its owner: revalidate soon
LOCK_TTL_S = 30
LOCK_WAIT_S = 10


def default_filename(upload_name: str | None, data: bytes, extension: str) -> str:
    """The name an upload gets when the client sends no `filename`: the upload's own name, as the
    docs promise (a client deletes `test.png` after uploading `test.png`). Browsers send a bare
    name, old ones a whole `C:\\Users\\...` path: only its last part is kept, without control or
    invisible format characters, cut to S3's segment limit with its extension kept. A part
    without a usable name falls back to a content hash, so two nameless uploads never collide
    unless they are the same bytes."""
    name = (upload_name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and unicodedata.category(ch) != "Cf").strip()
    if name in {"", ".", ".."}:
        return f"{hashlib.sha256(data).hexdigest()[:20]}.{extension}"
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, dot, ext = name, "", ""
    while len((stem + dot + ext).encode()) > MAX_SEGMENT_BYTES:
        stem = stem[:-1]
    return safe_name(stem + dot + ext)


class Busy(RuntimeError):
    """Another write to the same key held the lock for too long."""


@dataclass(frozen=True)
class ImageRef:
    path: str
    filename: str
    key: str


class ImageStore:
    def __init__(self, store: ObjectStore, bucket: str, region: str | None = None, prefix: str = "") -> None:
        self.store, self.bucket, self.region, self.prefix = store, bucket, region, prefix.strip("/")

    def ref(self, path: str, filename: str) -> ImageRef:
        """Validate a client's path and name; raises UnsafeKey."""
        clean_path = safe_path(path, allow_empty=True)
        clean_name = safe_name(filename)
        key = "/".join(p for p in (self.prefix, clean_path, clean_name) if p)
        if len(key.encode()) > MAX_KEY_BYTES:
            raise UnsafeKey("path and filename together are too long")
        return ImageRef(clean_path, clean_name, key)

    def head(self, ref: ImageRef) -> ObjectInfo:
        return self.store.head(self.bucket, ref.key, self.region)

    def owner(self, ref: ImageRef) -> str | None:
        try:
            return self.head(ref).metadata.get(OWNER_META)
        except ObjectNotFound:
            return None

    @contextmanager
    def _locked(self, client: redis.Redis | None, ref: ImageRef) -> Iterator[None]:
        if client is None:
            yield
            return
        lock = client.lock(
            keys.imgbed_owner_lock(f"{self.bucket}/{ref.key}"),
            timeout=LOCK_TTL_S,
            blocking_timeout=LOCK_WAIT_S,
        )
        if not lock.acquire():
            raise Busy(ref.key)
        try:
            yield
        finally:
            with suppress(redis.exceptions.LockError):  # expired meanwhile; the write was atomic
                lock.release()

    def check(self, ref: ImageRef, writer: Writer, claims: redis.Redis | None = None) -> None:
        """Raise NotOwner if `writer` may not write this key (someone else's, or ownerless), or,
        given the Redis that holds export claims, if another user's export has claimed it: that
        export checked the key was free and will complete its video or poster there."""
        reason = refusal(existing_metadata(self.store, self.bucket, ref.key, self.region), writer)
        claimed = destination_claim(claims, self.bucket, ref.key) if claims is not None else None
        if reason is None and refusal(claimed, writer) is not None:
            reason = "an export of another user is writing that key"
        if reason is not None:
            raise NotOwner(f"{ref.key}: {reason}")

    def put(
        self, ref: ImageRef, data: bytes, content_type: str, writer: Writer, lock: redis.Redis | None = None
    ) -> Uploaded:
        """Store the bytes as they are, after the ownership check (tasks/tenancy/ownership.py), the
        export claims included when there is a Redis (`lock`)."""
        with self._locked(lock, ref):
            self.check(ref, writer, lock)
            return self.store.put_bytes(
                self.bucket, ref.key, data, content_type, writer.metadata, self.region, CACHE_CONTROL
            )

    def delete(self, ref: ImageRef, user: str, service: bool, lock: redis.Redis | None = None) -> None:
        """Raises ObjectNotFound if there is no such image, NotOwner if it is not the caller's to
        delete (someone else's, or an object the service did not write)."""
        with self._locked(lock, ref):
            info = self.head(ref)
            if not may_delete(info.metadata, user, service):
                raise NotOwner(ref.key)
            self.store.delete(self.bucket, ref.key, self.region)

    def open(self, ref: ImageRef) -> tuple[Any, dict[str, Any]]:
        return self.store.open_stream(self.bucket, ref.key, self.region)
