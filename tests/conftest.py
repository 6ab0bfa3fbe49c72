"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os

# Tests never read the developer's environment for service addresses or secrets.
for name in list(os.environ):
    if name.startswith("RESOURCED_") or name in {"CELERY_BROKER_URL"}:
        del os.environ[name]
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
