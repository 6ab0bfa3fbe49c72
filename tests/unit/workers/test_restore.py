"""Restore steps as plain functions: per-file codes, and the callback retry window."""

from __future__ import annotations

import random

import pytest
from celery.utils.time import get_exponential_backoff_interval

from tasks.platform.settings import Settings
from tasks.restore.store import RestoreFile, RestoreJob
from tasks.storage import ObjectStore
from tests.helpers import moto_buckets
from workers.jobs.restore import DELIVERY_BACKOFF_MAX_S, advance, delivery_id, retry_window_over


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


def attempts_until_the_window_ends(backoff_s: float, window_hours: float) -> list[float]:
    """When each delivery happens for a client that never acknowledges: the waits are the ones
    Celery's autoretry draws (its own function, full jitter on), the stop is the service's."""
    restore = job([])
    factor, now, times = int(max(1.0, backoff_s)), 0.0, []
    while True:
        times.append(now)
        restore.attempts.append({"at": now, "ok": False})
        if retry_window_over(restore, window_hours, now):
            return times
        now += get_exponential_backoff_interval(factor, len(times) - 1, DELIVERY_BACKOFF_MAX_S, True)


@pytest.mark.parametrize(("backoff_s", "window_hours"), [(30, 6), (30, 1), (0.2, 10 / 3600), (600, 24)])
def test_callback_retries_cover_the_window_whatever_the_jitter_draws(
    backoff_s: float, window_hours: float
) -> None:
    state = random.getstate()
    try:
        random.seed(20261204)  # Celery draws from the module's generator: seeded, the test is exact
        schedules = [attempts_until_the_window_ends(backoff_s, window_hours) for _ in range(300)]
    finally:
        random.setstate(state)
    window = window_hours * 3600
    for times in schedules:
        assert times[-1] >= window  # the client is tried for the whole window...
        assert times[-2] < window  # ...and given up on at its first try past it
        assert times[-1] - times[-2] <= DELIVERY_BACKOFF_MAX_S  # tried at least hourly


def test_two_users_jobs_with_one_task_id_are_delivered_under_different_ids() -> None:
    """A receiver that drops repeated webhook-ids must not take Mallory's result for Alice's."""
    alice = RestoreJob("T1", "alice", "archive", "us-east-1", "d", "http://client/cb", 1, "Bulk", [])
    mallory = RestoreJob("T1", "mallory", "archive", "us-east-1", "d", "http://client/cb", 1, "Bulk", [])
    assert delivery_id(alice) != delivery_id(mallory)
    assert delivery_id(alice) == delivery_id(RestoreJob.from_json(alice.to_json()))  # and on retries
