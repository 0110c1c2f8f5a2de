"""In-process change notifications: long-polls and event streams wait here, hooks subscribe."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

logger = logging.getLogger(__name__)


class TaskEvents:
    """A version counter per task id; waiters wake when it moves. Nothing here is durable."""

    def __init__(self, remember: int = 100_000):
        self._cond = threading.Condition()
        self._versions: "OrderedDict[str, int]" = OrderedDict()
        self._remember = remember
        self._finished_hooks: list = []
        self._closed = False
        self._finished_seen: "OrderedDict[tuple, None]" = OrderedDict()

    def version(self, task_id: str) -> int:
        with self._cond:
            return self._versions.get(task_id, 0)

    def publish(self, task_id: str) -> None:
        """Something about this task changed (progress, status)."""
        with self._cond:
            self._versions[task_id] = self._versions.pop(task_id, 0) + 1
            if len(self._versions) > self._remember:
                self._versions.popitem(last=False)
            self._cond.notify_all()

    def wait(self, task_id: str, seen: int, timeout: float) -> int:
        """Block until the task's version differs from `seen` or the timeout; return the version."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._versions.get(task_id, 0) == seen and not self._closed:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._versions.get(task_id, 0)

    def close(self) -> None:
        """Shutdown: wake every waiter now and make later waits return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def on_finished(self, hook) -> None:
        """Call hook(task_row) whenever a task reaches a terminal status."""
        self._finished_hooks.append(hook)

    def finished(self, row) -> None:
        self.publish(row["id"])
        # Two actors may report the same end (the janitor expires a task, then its worker sees it ended):
        # hooks run once per ending, so metrics count it once and the webhook is sent once.
        key = (row["id"], row["completed_at"])
        with self._cond:
            if key in self._finished_seen:
                return
            self._finished_seen[key] = None
            if len(self._finished_seen) > self._remember:
                self._finished_seen.popitem(last=False)
        for hook in self._finished_hooks:
            try:
                hook(row)
            except Exception:  # a hook must never break the transition that already committed
                logger.exception("finished-hook failed for task %s", row["id"])
