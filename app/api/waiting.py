"""Requests that wait (long-polls, event streams): one cap for both, global and per tenant, and their waits.

Each waiting request holds one HTTP thread, so at most half of them wait at once, and one tenant
at most half of that: a tenant that opens many cannot make the others get refused. A request over
the cap is answered at once: 429 when its tenant holds its share, 503 when the service does. The
wait itself is whatever `wait(timeout)` the caller passes; it is cut into short slices so that a
client that went away frees its slot (and its thread) within a slice, and shutdown answers every
waiter at once.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

from ..errors import BadInput

SLICE = 0.5  # seconds: how soon a waiter notices that its client left or the service is stopping


class WaitSlots:
    """Counts of waiting requests, in total and per tenant; close() ends every wait."""

    def __init__(self, total: int, per_tenant: int):
        self.total, self.per_tenant = total, per_tenant
        self._lock = threading.Lock()
        self._by_tenant: Counter[str] = Counter()
        self._closed = threading.Event()

    @classmethod
    def for_threads(cls, http_threads: int) -> "WaitSlots":
        total = max(1, http_threads // 2)
        return cls(total, max(1, total // 2))

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def in_use(self, tenant: str | None = None) -> int:
        with self._lock:
            return self._by_tenant[tenant] if tenant is not None else sum(self._by_tenant.values())

    def acquire(self, tenant: str, code: str, what: str) -> "Slot":
        """A slot for one waiting request, or BadInput 429 (this tenant's share) / 503 (the service's)."""
        with self._lock:
            if self._by_tenant[tenant] >= self.per_tenant:
                raise BadInput(429, code, f"this client already has {self.per_tenant} {what} open; "
                               "close one or poll instead", {"Retry-After": "5"})
            if sum(self._by_tenant.values()) >= self.total:
                raise BadInput(503, code, f"too many {what} are open; poll instead", {"Retry-After": "5"})
            self._by_tenant[tenant] += 1
        return Slot(self, tenant)

    def _release(self, tenant: str) -> None:
        with self._lock:
            self._by_tenant[tenant] -= 1
            if self._by_tenant[tenant] <= 0:
                del self._by_tenant[tenant]

    def close(self) -> None:
        """Shutdown: every wait returns now, and later ones do not wait."""
        self._closed.set()


class Slot:
    """One waiting request's place; release() is idempotent (the response's close and its end both call it)."""

    def __init__(self, slots: WaitSlots, tenant: str):
        self._slots, self._tenant = slots, tenant
        self._held = True
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._slots._release(self._tenant)

    def wait(self, wait, timeout: float, left: threading.Event | None = None):
        """Call wait(seconds) in slices until it returns something new, the time is up, the client
        left or the service stops; returns (what the last call returned or None, why it stopped)."""
        end = time.monotonic() + timeout
        while True:
            if self._slots.closed:
                return None, "shutdown"
            if left is not None and left.is_set():
                return None, "left"
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None, "timeout"
            result = wait(min(SLICE, remaining))
            if result is not None:
                return result, "changed"
