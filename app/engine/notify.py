"""In-process change notifications: long-polls and event streams wait here, workers hear cancels.

The distributed mode feeds the same object from PostgreSQL's LISTEN/NOTIFY (postgres_notify.py),
so waiting always happens on a local condition variable. Nothing here is durable.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Callable

logger = logging.getLogger(__name__)


class LocalNotifier:
    """A version counter per task id; waiters wake when it moves."""

    def __init__(self, remember: int = 100_000):
        self._lock = threading.Lock()
        # One condition per task someone waits on: a change wakes that task's waiters only, not
        # every long-poll of the service (each woken waiter costs a GIL round trip for nothing).
        self._waiting: dict[str, list] = {}  # task id -> [condition on _lock, waiters]
        self._versions: "OrderedDict[str, int]" = OrderedDict()
        self._remember = remember
        self._cancel_hooks: list[Callable[[str], None]] = []
        self._closed = False
        self._epoch = 0  # added to every version: heard_all() moves them all at once

    def version(self, task_id: str) -> int:
        with self._lock:
            return self._versions.get(task_id, 0) + self._epoch

    def publish(self, task_id: str) -> None:
        """Something about this task changed (progress, status)."""
        self.heard(task_id)

    def heard(self, task_id: str) -> None:
        """A change made here or, through a listener, by another process."""
        with self._lock:
            self._versions[task_id] = self._versions.pop(task_id, 0) + 1
            if len(self._versions) > self._remember:
                self._versions.popitem(last=False)
            waiting = self._waiting.get(task_id)
            if waiting is not None:
                waiting[0].notify_all()

    def heard_all(self) -> None:
        """Changes may have been missed (a listener reconnected): every waiter looks again."""
        with self._lock:
            self._epoch += 1
            self._wake_all()

    def wait(self, task_id: str, seen: int, timeout: float) -> int:
        end = time.monotonic() + timeout
        with self._lock:
            if self._versions.get(task_id, 0) + self._epoch != seen or self._closed:
                return self._versions.get(task_id, 0) + self._epoch
            waiting = self._waiting.setdefault(task_id, [threading.Condition(self._lock), 0])
            waiting[1] += 1
            try:
                while self._versions.get(task_id, 0) + self._epoch == seen and not self._closed:
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    waiting[0].wait(left)
            finally:
                waiting[1] -= 1
                if not waiting[1]:
                    del self._waiting[task_id]
            return self._versions.get(task_id, 0) + self._epoch

    def _wake_all(self) -> None:
        for condition, _ in self._waiting.values():
            condition.notify_all()

    def announce_cancel(self, task_id: str) -> None:
        self.heard_cancel(task_id)

    def heard_cancel(self, task_id: str) -> None:
        for hook in list(self._cancel_hooks):
            try:
                hook(task_id)
            except Exception:  # a hook must never break the cancel that already committed
                logger.exception("cancel hook failed for task %s", task_id)

    def on_cancel(self, hook: Callable[[str], None]) -> None:
        self._cancel_hooks.append(hook)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake_all()
