"""The one retry policy: which failures to try again, and how long to wait first.

Connection errors, timeouts, 408, 409, 429 and 5xx are tried again, up to ``max_retries``
times, with exponential backoff and jitter; a ``Retry-After`` header is honoured up to a
cap. Anything else, a 400 above all, is final.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx

RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    #: the longest Retry-After the client will wait for
    max_retry_after: float = 60.0
    _random: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def should_retry(self, attempt: int, response: httpx.Response | None) -> bool:
        """Whether to try again after ``attempt`` failed tries (None: no answer came)."""
        if attempt > self.max_retries:
            return False
        if response is None:
            return True
        return response.status_code in RETRY_STATUSES or response.status_code >= 500

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before try ``attempt + 1``."""
        retry_after = _retry_after(response)
        if retry_after is not None and 0 <= retry_after <= self.max_retry_after:
            return retry_after
        backoff = min(self.initial_delay * 2 ** (attempt - 1), self.max_delay)
        # Jitter spreads out clients that failed together.
        return float(backoff * (1 - 0.25 * self._random.random()))


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after-ms")
    if value is not None:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
