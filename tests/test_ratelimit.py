"""The token bucket behind 429s, on a clock the test moves."""

from __future__ import annotations

import pytest

from openusage.server.errors import ApiError
from openusage.server.ratelimit import RateLimiter


def test_bursts_up_to_the_limit_then_refills_at_the_rate() -> None:
    now = [1000.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    for _ in range(60):
        limiter.check("k")
    with pytest.raises(ApiError) as refused:
        limiter.check("k")
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "1"
    limiter.check("other")  # each key has its own bucket
    now[0] += 1.0  # one request a second comes back
    limiter.check("k")
    with pytest.raises(ApiError):
        limiter.check("k")


def test_retry_after_says_how_long_to_wait() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    limiter.check("k")
    limiter.check("k")
    with pytest.raises(ApiError) as refused:
        limiter.check("k")
    assert refused.value.headers["Retry-After"] == "30"
