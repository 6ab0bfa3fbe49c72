"""Progress from the pipeline into the job record, throttled: clients poll, they need ~1 s."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 1.0


class ThrottledProgress:
    """Call it with a named step and a 0..1 fraction; writes at most once a second per step."""

    def __init__(self, write: Callable[[float, str], object], interval_s: float = MIN_INTERVAL_S) -> None:
        self.write = write
        self.interval_s = interval_s
        self._last_step = ""
        self._last_time = 0.0
        self._last_fraction = -1.0

    def __call__(self, step: str, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        now = time.monotonic()
        if step == self._last_step and (
            now - self._last_time < self.interval_s or fraction <= self._last_fraction
        ):
            return
        self._last_step, self._last_time, self._last_fraction = step, now, fraction
        try:
            self.write(fraction, step)
        except redis.RedisError as exc:  # Redis away for a moment: the export itself goes on
            log.warning("progress not recorded", extra={"step": step, "reason": str(exc)})
