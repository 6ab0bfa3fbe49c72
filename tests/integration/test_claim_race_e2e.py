"""Claims by identity over real HTTP (the Procfile's web and worker, redis-server, moto's S3
server): Alice sends the same export twice at the same moment and Mallory asks for the same
ExportS3Key right after, round after round. Mallory is refused every time; Alice's exports end
5 with her as the owner. Before claims were held by identity, 14 rounds in 80 let Mallory in."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from scripts import devstack
from scripts.samples import SampleSpec, generate_recording
from tasks.platform import keys
from tests.helpers import upload_recording
from tests.integration.conftest import poll_export
from tests.integration.tenancy_helpers import LIVE, _db, export_to, issue

pytestmark = pytest.mark.integration

ROUNDS = 50
WAITED = 3  # rounds whose export is followed to its end (the rest are checked at admission)
EXPORT = "/resource/v1/i/export-to-s3dir"


@pytest.fixture(scope="module")
def race_env(service_env: dict[str, str]) -> dict[str, str]:
    """The shared stack's settings on a Redis database of its own, with room for every round."""
    return {
        **service_env,
        "RESOURCED_REDIS_URL": _db(service_env["RESOURCED_REDIS_URL"], 9),
        "RESOURCED_MAX_ACTIVE_EXPORTS": str(4 * ROUNDS),
        "RESOURCED_MAX_ACTIVE_EXPORTS_PER_USER": str(2 * ROUNDS),
    }


@pytest.fixture(scope="module")
def stack(race_env: dict[str, str], logs_dir: Path, s3: Any) -> Iterator[str]:
    with devstack.service(race_env, logs_dir, tag="claim-race") as url:
        yield url


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> str:
    rec = generate_recording(tmp_path_factory.mktemp("race-rec"), SampleSpec(seconds=6))
    upload_recording(s3, "archive", LIVE, rec)
    return LIVE


def post(web: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = requests.post(f"{web}{EXPORT}", json=body, headers={"Prefer": "wait=0"}, timeout=10)
    return response.status_code, response.json()


def twice_at_once(web: str, body: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The same request from two threads released together."""
    answers: list[tuple[int, dict[str, Any]]] = []
    start = threading.Barrier(2)

    def send() -> None:
        start.wait(5)
        answers.append(post(web, body))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return answers


@pytest.mark.timeout(120)
def test_another_user_never_takes_a_key_claimed_by_identical_concurrent_requests(
    stack: str, race_env: dict[str, str], recording: str, s3: Any
) -> None:
    alice, mallory = issue(race_env, "alice"), issue(race_env, "mallory")
    client = redis.Redis.from_url(race_env["RESOURCED_REDIS_URL"], decode_responses=True)
    for round_ in range(ROUNDS):
        key = f"race/{round_}/clip.mp4"
        answers = twice_at_once(stack, export_to(alice, "alice", "exports", key))
        assert [a[1]["ErrorCode"] for a in answers] in ([1, 1], [1, 5], [5, 1], [5, 5]), answers
        status, answer = post(stack, export_to(mallory, "mallory", "exports", key, StartTime="1000"))
        assert (status, answer["ErrorCode"]) == (403, 3), (round_, answer)
        claim = client.get(keys.destination_claim("exports", key))
        if claim is not None:  # gone only once Alice's export has ended (its object then refuses)
            held = json.loads(claim)
            assert held["owner"] == "alice" and len(held["holders"]) == 1, held
    for round_ in range(WAITED):
        key = f"race/{round_}/clip.mp4"
        status, answer = poll_export(stack, export_to(alice, "alice", "exports", key), timeout_s=60)
        assert (status, answer["ErrorCode"]) == (200, 5), answer
        assert s3.head_object(Bucket="exports", Key=key)["Metadata"]["owner"] == "alice"
        assert client.get(keys.destination_claim("exports", key)) is None  # given back at its end
