"""The embedded mode's queue of task ids: priority then FIFO, delayed entries for retries, bounded.

It is also the embedded Dispatcher (app/engine/protocols.py): dispatch() offers an id, the worker
pool takes them with get(). Overflow stays in the database and is offered again by refill.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Protocol


class TaskQueue(Protocol):
    def put(self, task_id: str, priority: int, *, not_before: float | None = None) -> bool:
        """Offer a task id; False when the queue is full (the database still has the task)."""

    def get(self, timeout: float | None = None) -> str | None:
        """The next due id, highest priority first and FIFO within one; None on timeout or close."""

    def depth(self) -> int:
        """Ids waiting (due or delayed)."""

    def close(self) -> None:
        """Wake every waiting consumer; get() answers None from now on."""

    overflowed: bool  # an id was refused for lack of room: the database has tasks the queue does not


class LocalQueue:
    """A bounded in-process priority queue with delayed entries (retries wait here, not in a worker)."""

    def __init__(self, maxsize: int = 10000, clock=time.time):
        self.maxsize = maxsize
        self._clock = clock
        self._ready: list[tuple[int, int, str]] = []  # (-priority, seq, id)
        self._delayed: list[tuple[float, int, int, str]] = []  # (due, seq, priority, id)
        self._members: set[str] = set()
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self.overflowed = False

    # -- the Dispatcher side ------------------------------------------------------------------
    split_steps = False  # one worker runs a task's OCR and its extraction under one claim

    def dispatch(self, task_id: str, priority: int, *, phase: str = "ocr", not_before: float | None = None) -> bool:
        return self.put(task_id, priority, not_before=not_before)

    # -- the queue side -----------------------------------------------------------------------
    def put(self, task_id: str, priority: int, *, not_before: float | None = None) -> bool:
        with self._cond:
            if task_id in self._members:
                return True
            if len(self._members) >= self.maxsize:
                self.overflowed = True
                return False
            self._members.add(task_id)
            if not_before is not None and not_before > self._clock():
                heapq.heappush(self._delayed, (not_before, next(self._seq), priority, task_id))
            else:
                heapq.heappush(self._ready, (-priority, next(self._seq), task_id))
            self._cond.notify()
            return True

    def _promote_due(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, priority, task_id = heapq.heappop(self._delayed)
            heapq.heappush(self._ready, (-priority, next(self._seq), task_id))

    def get(self, timeout: float | None = None) -> str | None:
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = self._clock()
                self._promote_due(now)
                if self._ready:
                    _, _, task_id = heapq.heappop(self._ready)
                    self._members.discard(task_id)
                    return task_id
                # Sleep until woken by put/close, the next delayed entry is due, or the timeout.
                waits = []
                if end is not None:
                    waits.append(end - time.monotonic())
                if self._delayed:
                    waits.append(self._delayed[0][0] - now)
                wait = min(waits) if waits else None
                if wait is not None and wait <= 0:
                    if end is not None and time.monotonic() >= end:
                        return None
                    continue
                self._cond.wait(wait)
            return None

    def depth(self) -> int:
        with self._cond:
            return len(self._members)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
