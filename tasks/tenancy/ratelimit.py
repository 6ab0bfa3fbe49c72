"""A per-user fixed-window rate limit in Redis: shared by every web process, cheap (one INCR)."""

from __future__ import annotations

import time

import redis

from tasks.platform import keys


def retry_after(
    client: redis.Redis, action: str, user: str, per_minute: int, now: float | None = None
) -> int:
    """0 when this call is allowed (and counted), else whole seconds until the window ends."""
    now = time.time() if now is None else now
    window = int(now // 60)
    key = keys.rate_limit(action, user, window)
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count = int(pipe.execute()[0])
    if count <= per_minute:
        return 0
    return max(1, int((window + 1) * 60 - now + 0.999))
