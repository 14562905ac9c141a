"""Per-key rate limits: a token bucket for each key, answered with 429 and Retry-After."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from .errors import ApiError


class RateLimiter:
    """Allows ``per_minute`` requests a minute to each key, with bursts up to that many."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str) -> None:
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - last) * self._rate)
            if tokens < 1:
                self._buckets[key_id] = (tokens, now)
                wait = math.ceil((1 - tokens) / self._rate)
                raise ApiError(
                    429,
                    f"Rate limit reached: {int(self._capacity)} requests per minute for this key. "
                    f"Try again in {wait} s.",
                    type="requests",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(max(1, wait))},
                )
            self._buckets[key_id] = (tokens - 1, now)
