"""The per-key rate limit shared by every API process of the distributed mode: a bucket row per key."""
from __future__ import annotations

import logging
import time

from ..errors import StorageError

logger = logging.getLogger(__name__)


class DatabaseRateLimiter:
    """The same contract as auth.RateLimiter (`take(key)` -> seconds to wait, 0 when allowed), in the database."""

    def __init__(self, store, rate: float, burst: int, *, clock=time.time):
        self.store = store
        self.rate = rate
        self.burst = max(int(burst), 1)
        self.clock = clock

    def take(self, key: str) -> float:
        if self.rate <= 0:
            return 0.0
        try:
            return self.store.take_token(key, self.rate, self.burst, self.clock())
        except StorageError as exc:  # a passing fault must not lock every client out: let this one through
            logger.warning("rate limit not checked for key %s: %s", key, exc.message)
            return 0.0
