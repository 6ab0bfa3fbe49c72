"""Conditional writes: the state a key must still be in for a write to land.

An attempt looks at its destination key before it writes a byte; the write that makes the object
visible (CompleteMultipartUpload, PutObject) then carries what it saw, so S3 itself refuses it when
anyone else wrote the key since: `If-None-Match: *` for a key that was free, `If-Match: <etag>` to
replace the known version of the owner's own earlier object. A fence check in Redis and the S3
call after it are two requests; the condition closes that window on the storage side.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WriteCondition:
    """`etag` None: the key was free when the attempt looked; else the ETag of what it held."""

    etag: str | None = None

    @classmethod
    def free(cls) -> WriteCondition:
        return cls(None)

    @classmethod
    def replacing(cls, etag: str) -> WriteCondition:
        return cls(etag)

    def params(self) -> dict[str, str]:
        """The boto3 parameters of PutObject / CompleteMultipartUpload that carry the condition."""
        if self.etag is None:
            return {"IfNoneMatch": "*"}
        return {"IfMatch": f'"{self.etag.strip(chr(34))}"'}

    def describe(self) -> str:
        return "the key to be free" if self.etag is None else f"the key to hold ETag {self.etag}"
