"""Rate limits, answered with 429 and Retry-After: requests per key, and failed
authentications per client address (so keys cannot be guessed at full speed)."""

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


class FailureLimiter:
    """Allows ``per_minute`` failed authentications a minute from each client address.

    An address past its allowance is refused before its key is even looked at, so a
    guess cannot be told right from wrong; a valid key never spends the allowance.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _tokens(self, address: str, now: float) -> float:
        tokens, last = self._buckets.get(address, (self._capacity, now))
        return min(self._capacity, tokens + (now - last) * self._rate)

    def check(self, address: str) -> None:
        """429 when ``address`` has failed too often lately."""
        now = self._clock()
        with self._lock:
            tokens = self._tokens(address, now)
            if len(self._buckets) > 100_000:  # an attacker's many addresses cannot fill memory
                self._buckets.clear()
        if tokens < 1:
            wait = max(1, math.ceil((1 - tokens) / self._rate))
            raise ApiError(
                429,
                f"Too many failed authentications from this address. Try again in {wait} s.",
                type="requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(wait)},
            )

    def failed(self, address: str) -> None:
        now = self._clock()
        with self._lock:
            self._buckets[address] = (self._tokens(address, now) - 1, now)
