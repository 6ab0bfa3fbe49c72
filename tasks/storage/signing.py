"""URLs that download an object: under a public base URL, or presigned and briefly reused.

A presigned URL must not outlive the credentials that signed it: instance roles and IRSA hand
out credentials that expire, and a URL signed with them stops working when they do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from tasks.platform.settings import Settings

URL_CACHE_SIZE = 10_000
SIGNING_MARGIN_S = 60  # a URL is never handed out for the last minute of its credentials


class UrlSigner:
    """Makes and caches download URLs for an ObjectStore's clients."""

    def __init__(
        self,
        settings: Settings,
        client: Callable[[str | None], Any],
        session: Callable[[str | None], Any | None],
    ) -> None:
        self.settings = settings
        self.client = client
        self._session = session
        self._urls: dict[tuple[str, str, str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

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
        session = self._session(region)
        credentials = session.get_credentials() if session is not None else None
        if credentials is None:
            return None
        credentials.get_frozen_credentials()  # refreshes them first when they are about to expire
        expiry = getattr(credentials, "_expiry_time", None)  # RefreshableCredentials only
        if expiry is None:
            return None
        return float((expiry - datetime.now(UTC)).total_seconds())
