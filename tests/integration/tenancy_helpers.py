"""Helpers shared by the tenancy and web-abuse tests: sessions from the `resourced` command,
requests as clients send them, and snapshots of objects to compare before and after."""

from __future__ import annotations

import io
import os
import re
import subprocess
from typing import Any

import requests
from PIL import Image

from scripts import devstack
from tests.helpers import export_body, storage_info

PDT_MS = 1_700_000_000_000


LIVE = "live/tenancy"


VERSIONED = "vexports"


def _db(url: str, number: int) -> str:
    return re.sub(r"/\d+$", f"/{number}", url)


def issue(env: dict[str, str], user: str, *extra: str) -> str:
    """`resourced session issue`, as an operator runs it."""
    out = subprocess.run(
        [str(devstack.BIN / "resourced"), "session", "issue", "--user", user, *extra],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def snapshot(s3: Any, bucket: str, key: str) -> tuple[bytes, list[tuple[str, str]], dict[str, str]]:
    """The object's bytes, every version (id, ETag) and its metadata: what must not change."""
    body = s3.get_object(Bucket=bucket, Key=key)
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    versions = [(v["VersionId"], v["ETag"]) for v in listing.get("Versions", []) if v["Key"] == key]
    return body["Body"].read(), versions, body["Metadata"]


def jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(out, format="JPEG")
    return out.getvalue()


def upload(web: str, session: str, path: str, filename: str, data: bytes) -> dict[str, Any]:
    response = requests.post(
        f"{web}/api/imgbed/v1/upload",
        headers={"X-Session-Id": session},
        files={"file": (filename, data)},
        data={"path": path, "filename": filename},
        timeout=10,
    )
    return {"status": response.status_code, **response.json()}


def delete(web: str, session: str, path: str, filename: str) -> dict[str, Any]:
    response = requests.post(
        f"{web}/api/imgbed/v1/delete",
        json={"path": path, "filename": filename},
        headers={"X-Session-Id": session},
        timeout=10,
    )
    return {"status": response.status_code, **response.json()}


def export_to(session: str, user: str, bucket: str, key: str, **extra: Any) -> dict[str, Any]:
    fields = {"LivePath": LIVE, "ExportS3Bucket": bucket, "ExportS3Key": key, **extra}
    return export_body(session, user, PDT_MS, 2000, **fields)


def restore_body(session: str, user: str, files: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "storage_info": storage_info("archive"),
        "file_dir": "flood",
        "file_list": files,
        "callback_url": "http://127.0.0.1:9/cb",
        "SessionId": session,
        "userid": user,
        **extra,
    }
