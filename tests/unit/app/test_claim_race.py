"""Claims by identity, through the Flask app over fakeredis and moto's in-process S3: Alice sends
the same export twice at the same moment, then Mallory asks for the same ExportS3Key."""

from __future__ import annotations

import threading
from typing import Any

import fakeredis
import pytest
from flask.testing import FlaskClient

from app.api import export as export_api
from app.auth import SignedSessions
from tasks.exports import estimate
from tasks.exports.store import ExportJobStore
from tasks.platform.settings import Settings
from tasks.tenancy.ownership import claim_holders, destination_claim
from tests.helpers import export_body

EXPORT = "/resource/v1/i/export-to-s3dir"
TARGET = {"ExportS3Bucket": "exports", "ExportS3Key": "shared/clip.mp4"}


@pytest.mark.timeout(30)
def test_an_identical_request_losing_the_admission_race_keeps_the_claim_of_the_job(
    app: Any,
    client: FlaskClient,
    settings: Settings,
    redis_client: fakeredis.FakeRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alice's first request is held right before its admission while her identical second one
    is admitted; the first then finds the job exists. It must not give back the claim the job
    holds: Mallory, right after, is refused (3) and the claim still names Alice's job."""
    issue = SignedSessions(settings.secret_key).issue
    alice, mallory = issue("alice", 3600), issue("mallory", 3600)
    body = export_body(alice, "alice", 1000, 1000, **TARGET)
    second_done = threading.Event()
    first_waiting = threading.Event()
    wait_for_new = estimate.wait_for_new
    held: list[str] = []

    def slow_first(*args: Any, **kwargs: Any) -> float:
        if not held:  # the first request: held between its checks and its admission
            held.append(threading.current_thread().name)
            first_waiting.set()
            assert second_done.wait(10)
        return wait_for_new(*args, **kwargs)

    monkeypatch.setattr(export_api.estimate, "wait_for_new", slow_first)
    answers: list[int] = []
    first = threading.Thread(
        target=lambda: answers.append(app.test_client().post(EXPORT, json=body).get_json()["ErrorCode"])
    )
    first.start()
    assert first_waiting.wait(10)
    second = app.test_client().post(EXPORT, json=body, headers={"Prefer": "wait=0"})
    assert second.get_json()["ErrorCode"] == 1
    second_done.set()
    first.join(20)
    assert answers == [1]  # both of Alice's requests: one job, accepted

    jobs: ExportJobStore = app.extensions["resourced"].jobs
    (job_id,) = jobs.active_ids()
    assert claim_holders(redis_client, "exports", "shared/clip.mp4") != {}
    taken = client.post(EXPORT, json=export_body(mallory, "mallory", 5000, 1000, **TARGET))
    assert (taken.status_code, taken.get_json()["ErrorCode"]) == (403, 3)
    for key in ("shared/clip.mp4", "shared/clip.jpg"):
        assert set(claim_holders(redis_client, "exports", key)) == {job_id}
        assert destination_claim(redis_client, "exports", key) == {"owner": "alice", "writer": "alice"}
