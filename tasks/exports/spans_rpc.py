"""recording-spans between the web and a worker: the request's plain values, and the reply the
worker pushes onto a short-lived Redis list that the waiting web request pops.

A spans request reads only the archive index and playlists, but that is archive code, which the
web tier does not hold (app/ has no media code); a worker on the `spans` queue answers it within
a bounded wait (docs/decisions.md).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import redis

from tasks.exports.spec import S3Location
from tasks.platform import keys

REPLY_TTL_S = 60  # a reply nobody popped (the web gave up) is gone soon after
POP_SLICE_S = 1  # one BLPOP at most this long: below the web's Redis socket timeout


@dataclass(frozen=True)
class SpansRequest:
    source: S3Location
    live_path: str
    start_ms: int | None
    duration_ms: int | None
    rendition: str
    cursor: str
    reply_to: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SpansRequest:
        data = json.loads(text)
        data["source"] = S3Location(**data["source"])
        return cls(**data)


def new_reply_key() -> str:
    return keys.spans_reply(uuid.uuid4().hex)


def send_reply(client: redis.Redis, reply_to: str, body: dict[str, Any]) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.rpush(reply_to, json.dumps(body, separators=(",", ":")))
    pipe.expire(reply_to, REPLY_TTL_S)
    pipe.execute()


def wait_reply(client: redis.Redis, reply_to: str, wait_s: float) -> dict[str, Any] | None:
    """The worker's answer, or None when none came within `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        popped = client.blpop([reply_to], timeout=max(1, min(POP_SLICE_S, round(left))))
        if popped is not None:
            found: dict[str, Any] = json.loads(popped[1])
            return found
