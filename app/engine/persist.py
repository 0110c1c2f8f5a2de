"""Riding out a passing storage fault: a lock held too long, a disk full for a few seconds."""
from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from ..errors import StorageError

logger = logging.getLogger(__name__)
T = TypeVar("T")

FIRST_DELAY = 0.05
MAX_DELAY = 2.0


def persist(call: Callable[[], T], *, budget: float, what: str = "write") -> T:
    """Run a storage call, trying again on a StorageError for up to `budget` seconds; then raise it."""
    delay = FIRST_DELAY
    end = time.monotonic() + budget
    while True:
        try:
            return call()
        except StorageError as exc:
            if time.monotonic() + delay > end:
                raise
            logger.warning("storage fault during %s (%s); trying again in %.2fs", what, exc.message, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
