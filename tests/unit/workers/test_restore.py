"""Restore steps as plain functions: per-file codes, and the callback retry window."""

from __future__ import annotations

from tasks.platform.settings import Settings
from tasks.restore.store import RestoreFile, RestoreJob
from tasks.storage import ObjectStore
from tests.helpers import moto_buckets
from workers.jobs.restore import DELIVERY_BACKOFF_MAX_S, advance, delivery_id, delivery_retries


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
    with moto_buckets("archive") as s3:
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


def test_callback_retries_cover_the_window_with_capped_doubling() -> None:
    retries = delivery_retries(backoff_s=30, window_hours=6)
    delays = [min(DELIVERY_BACKOFF_MAX_S, 30 * 2**k) for k in range(retries)]
    window = 6 * 3600
    assert sum(delays) >= 2 * window > sum(delays[:-1])  # just enough: full jitter halves it on average
    assert max(delays) == 3600 and delivery_retries(30, 1) < retries
    assert delivery_retries(0.2, 10 / 3600) == 5  # whole-second base: 1 + 2 + 4 + 8 < 20 <= ... + 16


def test_two_users_jobs_with_one_task_id_are_delivered_under_different_ids() -> None:
    """A receiver that drops repeated webhook-ids must not take Mallory's result for Alice's."""
    alice = RestoreJob("T1", "alice", "archive", "us-east-1", "d", "http://client/cb", 1, "Bulk", [])
    mallory = RestoreJob("T1", "mallory", "archive", "us-east-1", "d", "http://client/cb", 1, "Bulk", [])
    assert delivery_id(alice) != delivery_id(mallory)
    assert delivery_id(alice) == delivery_id(RestoreJob.from_json(alice.to_json()))  # and on retries
