"""Session backends: signed expiring tokens, and a login service's Redis session store."""

from __future__ import annotations

import json

import fakeredis

from app.auth import RedisSessions, SignedSessions, make_backend
from tasks.platform import keys
from tasks.platform.settings import Settings

SECRET = "auth-test-secret-0123456789abcdef"


def test_signed_tokens_carry_user_expiry_and_service_flag() -> None:
    sessions = SignedSessions(SECRET)
    alice = sessions.resolve(sessions.issue("alice", 60))
    assert alice is not None and alice.user == "alice" and not alice.service
    assert sessions.resolve(sessions.issue("ops", 60, service=True)).service  # type: ignore[union-attr]
    assert sessions.resolve(sessions.issue("alice", -1)) is None  # expired
    assert SignedSessions("another-secret-0123456789abcdef").resolve(sessions.issue("alice", 60)) is None
    assert sessions.resolve("x" * 5000) is None and sessions.resolve("") is None


def test_redis_store_as_a_login_service_keeps_it() -> None:
    client = fakeredis.FakeRedis()
    client.set(keys.session("sid-1"), json.dumps({"userid": "bob"}), ex=60)
    client.set(keys.session("sid-2"), b"not json", ex=60)
    client.set(keys.session("sid-3"), json.dumps({"userid": ""}), ex=60)
    sessions = RedisSessions(client)
    assert sessions.resolve("sid-1").user == "bob"  # type: ignore[union-attr]
    assert sessions.resolve("sid-2") is None and sessions.resolve("sid-3") is None
    assert sessions.resolve("nope") is None
    issued = sessions.issue("carol", 60)
    assert sessions.resolve(issued).user == "carol"  # type: ignore[union-attr]
    assert isinstance(make_backend(Settings(session_backend="redis"), client), RedisSessions)
