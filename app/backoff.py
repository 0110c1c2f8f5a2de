"""Retry delays: one exponential backoff with jitter for every retry loop of the service."""
from __future__ import annotations

import random


def delay(attempt: int, base: float, cap: float, *, retry_after: float | None = None) -> float:
    """Seconds before retry `attempt` (1 = the first retry): base * 2**(attempt-1), capped.

    Jittered to between half and all of that ("equal jitter"), so clients failing together do not
    retry together, and never shorter than a server's Retry-After (itself capped).
    """
    full = min(cap, base * 2 ** max(attempt - 1, 0))
    wait = full * random.uniform(0.5, 1.0)
    if retry_after:
        wait = max(wait, min(retry_after, cap))
    return wait
