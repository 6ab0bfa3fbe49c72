"""Sessions: who is calling. Pluggable: signed expiring tokens by default, or a Redis session
store kept by a platform's login service (`RESOURCED_SESSION_BACKEND=redis`).

A session may be scoped to `bucket/prefix` entries: it may then read and write only at or under
those prefixes, matched by whole path segments (`cam1` covers `cam1/a.ts`, never `cam10`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Protocol

import redis
from itsdangerous import BadSignature, URLSafeSerializer

from tasks.platform import keys
from tasks.platform.settings import Settings
from tasks.tenancy.objectkeys import UnsafeKey, safe_path, valid_bucket

_SALT = "resourced.session.v1"
MAX_SESSION_ID_LENGTH = 4096


class BadScope(ValueError):
    pass


def parse_scope(text: str) -> str:
    """`bucket` or `bucket/prefix`, normalised to `bucket/prefix` without a trailing slash."""
    bucket, _, prefix = text.strip().partition("/")
    prefix = prefix.strip("/")
    if not valid_bucket(bucket):
        raise BadScope(f"scope {text!r}: must be BUCKET/PREFIX with a valid bucket name")
    if prefix:
        try:
            prefix = safe_path(prefix)
        except UnsafeKey as exc:
            raise BadScope(f"scope {text!r}: prefix {exc}") from exc
    return f"{bucket}/{prefix}" if prefix else f"{bucket}/"


def _scopes(raw: object) -> tuple[str, ...] | None:
    """A stored scope list, or None when it is malformed (the session is then refused)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        return None
    try:
        return tuple(parse_scope(item) for item in raw)
    except BadScope:
        return None


@dataclass(frozen=True)
class Session:
    user: str
    service: bool = False  # an internal service caller: may act on any user's resources
    expires_at: float = 0.0
    scopes: tuple[str, ...] = ()  # "bucket/prefix" entries; empty: unscoped

    def allows(self, bucket: str, key: str) -> bool:
        """Whether `key` (an object key or a folder) in `bucket` is inside the session's scopes."""
        if not self.scopes:
            return True
        key = key.strip("/")
        for scope in self.scopes:
            scope_bucket, _, prefix = scope.partition("/")
            if scope_bucket != bucket:
                continue
            if not prefix or key == prefix or key.startswith(prefix + "/"):
                return True
        return False


class SessionBackend(Protocol):
    def resolve(self, session_id: str) -> Session | None: ...


class SignedSessions:
    """Tokens that carry the user and an expiry, signed with RESOURCED_SECRET_KEY (HMAC)."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_SALT)

    def issue(self, user: str, ttl_s: int, service: bool = False, scopes: tuple[str, ...] = ()) -> str:
        payload: dict[str, object] = {"u": user, "exp": int(time.time()) + ttl_s}
        if service:
            payload["svc"] = 1
        if scopes:
            payload["sc"] = [parse_scope(s) for s in scopes]
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
        scopes = _scopes(payload.get("sc"))
        if expires < time.time() or scopes is None:
            return None
        return Session(user=payload["u"], service=bool(payload.get("svc")), expires_at=expires, scopes=scopes)


class RedisSessions:
    """Sessions a login service keeps at resourced:session:{id} as JSON {"userid": ...}, with a TTL
    (and optionally "service": true, "scopes": ["bucket/prefix", ...])."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def issue(self, user: str, ttl_s: int, service: bool = False, scopes: tuple[str, ...] = ()) -> str:
        import secrets

        session_id = secrets.token_urlsafe(32)
        record: dict[str, object] = {"userid": user, "service": service}
        if scopes:
            record["scopes"] = [parse_scope(s) for s in scopes]
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
        except (ValueError, RecursionError):
            return None
        user = record.get("userid") if isinstance(record, dict) else None
        if not isinstance(user, str) or not user:
            return None
        scopes = _scopes(record.get("scopes"))
        if scopes is None:
            return None  # a malformed scope list must not turn into an unscoped session
        return Session(user=user, service=bool(record.get("service")), scopes=scopes)


def make_backend(settings: Settings, client: redis.Redis) -> SignedSessions | RedisSessions:
    if settings.session_backend == "redis":
        return RedisSessions(client)
    return SignedSessions(settings.require_secret_key())
