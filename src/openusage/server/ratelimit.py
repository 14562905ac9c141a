"""Rate limits, answered with 429 and Retry-After: requests per key, and failed
authentications per client address (so keys cannot be guessed at full speed)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from .errors import ApiError

#: past this many buckets an attacker with many addresses is filling memory: start afresh
MAX_BUCKETS = 100_000


class _TokenBuckets:
    """A token bucket per name: ``per_minute`` tokens a minute, bursts up to that many."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _tokens(self, name: str, now: float) -> float:
        """What ``name`` has now; call with the lock held."""
        tokens, last = self._buckets.get(name, (self._capacity, now))
        return min(self._capacity, tokens + (now - last) * self._rate)

    def _spend(self, name: str, now: float, tokens: float) -> None:
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.clear()
        self._buckets[name] = (tokens - 1, now)

    def _wait(self, tokens: float) -> int:
        """Whole seconds until one token is back."""
        return max(1, math.ceil((1 - tokens) / self._rate))


class RateLimiter(_TokenBuckets):
    """Allows ``per_minute`` requests a minute to each key, with bursts up to that many."""

    def check(self, key_id: str) -> None:
        now = self._clock()
        with self._lock:
            tokens = self._tokens(key_id, now)
            if tokens < 1:
                self._buckets[key_id] = (tokens, now)
            else:
                self._spend(key_id, now, tokens)
                return
        wait = self._wait(tokens)
        raise ApiError(
            429,
            f"Rate limit reached: {int(self._capacity)} requests per minute for this key. "
            f"Try again in {wait} s.",
            type="requests",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(wait)},
        )


class FailureLimiter(_TokenBuckets):
    """Allows ``per_minute`` failed authentications a minute from each client address.

    An address past its allowance is refused before its key is even looked at, so a
    guess cannot be told right from wrong; a valid key never spends the allowance.
    """

    def check(self, address: str) -> None:
        """429 when ``address`` has failed too often lately."""
        with self._lock:
            tokens = self._tokens(address, self._clock())
        if tokens < 1:
            wait = self._wait(tokens)
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
            self._spend(address, now, self._tokens(address, now))
