"""Sessions: who is calling. Pluggable: signed expiring tokens by default, or a Redis session
store kept by a platform's login service (`RESOURCED_SESSION_BACKEND=redis`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Protocol

import redis
from itsdangerous import BadSignature, URLSafeSerializer

from tasks import keys
from tasks.settings import Settings

_SALT = "resourced.session.v1"
MAX_SESSION_ID_LENGTH = 4096


@dataclass(frozen=True)
class Session:
    user: str
    service: bool = False  # an internal service caller: may act on any user's resources
    expires_at: float = 0.0


class SessionBackend(Protocol):
    def resolve(self, session_id: str) -> Session | None: ...


class SignedSessions:
    """Tokens that carry the user and an expiry, signed with RESOURCED_SECRET_KEY (HMAC)."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_SALT)

    def issue(self, user: str, ttl_s: int, service: bool = False) -> str:
        payload = {"u": user, "exp": int(time.time()) + ttl_s}
        if service:
            payload["svc"] = 1
        return str(self._serializer.dumps(payload))

    def resolve(self, session_id: str) -> Session | None:
        if not session_id or len(session_id) > MAX_SESSION_ID_LENGTH:
            return None
        try:
            payload = self._serializer.loads(session_id)
        except BadSignature:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("u"), str):
            return None
        expires = float(payload.get("exp", 0))
        if expires < time.time():
            return None
        return Session(user=payload["u"], service=bool(payload.get("svc")), expires_at=expires)


class RedisSessions:
    """Sessions a login service keeps at resourced:session:{id} as JSON {"userid": ...}, with a TTL."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def issue(self, user: str, ttl_s: int, service: bool = False) -> str:
        import secrets

        session_id = secrets.token_urlsafe(32)
        record = {"userid": user, "service": service}
        self.client.set(keys.session(session_id), json.dumps(record), ex=ttl_s)
        return session_id

    def resolve(self, session_id: str) -> Session | None:
        if not session_id or len(session_id) > 512:
            return None
        raw = self.client.get(keys.session(session_id))
        if not raw:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            return None
        user = record.get("userid") if isinstance(record, dict) else None
        if not isinstance(user, str) or not user:
            return None
        return Session(user=user, service=bool(record.get("service")))


def make_backend(settings: Settings, client: redis.Redis) -> SignedSessions | RedisSessions:
    if settings.session_backend == "redis":
        return RedisSessions(client)
    return SignedSessions(settings.require_secret_key())
