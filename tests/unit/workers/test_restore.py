"""Restore steps as plain functions: per-file codes, and the callback retry window."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tasks.restore_store import RestoreFile, RestoreJob
from tasks.settings import Settings
from tasks.storage import ObjectStore
from workers.jobs.restore import advance, next_delivery_in


def job(files: list[str]) -> RestoreJob:
    return RestoreJob(
        "t",
        "u",
        "archive",
        "us-east-1",
        "cold",
        "http://x/cb",
        1,
        "Bulk",
        [RestoreFile(n, f"cold/{n}") for n in files],
    )


def test_advance_settles_each_file_with_its_code() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="archive")
        s3.put_object(Bucket="archive", Key="cold/warm", Body=b"w")
        s3.put_object(Bucket="archive", Key="cold/frozen", Body=b"f", StorageClass="GLACIER")
        restore = job(["warm", "frozen", "missing"])
        assert advance(restore, ObjectStore(Settings())) is False  # the Glacier one started restoring
        assert {f.name: (f.state, f.code) for f in restore.files} == {
            "warm": ("settled", 0),
            "frozen": ("restoring", -1),
            "missing": ("settled", 1),
        }
        assert advance(restore, ObjectStore(Settings())) is True  # moto restores at once
        assert restore.code == 1 and restore.file_codes() == {"warm": 0, "frozen": 0, "missing": 1}


def test_callback_retries_back_off_then_stop_when_the_window_closes() -> None:
    restore = job(["a"])
    restore.settled_at = 1000.0
    delays = []
    for attempt in range(1, 6):
        restore.attempts = [{"ok": False}] * attempt
        delay = next_delivery_in(restore, backoff_s=30, window_hours=6, now=1000.0 + 60)
        assert delay is not None
        delays.append(delay)
    assert delays[0] == pytest.approx(22.5, abs=7.5) and delays[-1] >= 240  # 30 s doubling, jittered
    restore.attempts = [{"ok": False}] * 40
    assert next_delivery_in(restore, 30, 6, now=1000.0 + 60) <= 3600  # type: ignore[operator]
    assert next_delivery_in(restore, 30, 6, now=1000.0 + 6 * 3600 + 1) is None  # then: delivery_failed
