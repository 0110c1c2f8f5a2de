"""How a task ends: `finish()` is the only writer of a terminal status, and every ending is announced.

Whoever ends a task (its attempt, a client's cancel, the janitor past a deadline or a lease, a
shutdown) calls finish() with a guard saying which of them it is. The guarded statement has one
winner; only the winner announces the ending, so hooks (metrics, webhooks) run once per task.
"""
from __future__ import annotations

import logging
from typing import Callable

from ..models import TaskStatus
from .store import Guard

logger = logging.getLogger(__name__)

CANCEL_TRIES = 3  # a cancel racing a claim or a retry looks again this many times


class Lifecycle:
    """Ends tasks through one statement and tells the notifier and the finished-hooks."""

    def __init__(self, store, notifier, clock):
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self._hooks: list[Callable] = []

    def on_finished(self, hook: Callable) -> None:
        """Call hook(task_row) once whenever a task reaches a terminal status."""
        self._hooks.append(hook)

    def finish(self, task_id: str, status: TaskStatus, guard: Guard, *, result: dict | None = None,
               error: tuple[str, str] | None = None, stage: str | None = None):
        """Write the terminal status if the guard still holds; the ended row, or None when another won."""
        if stage is None and status is TaskStatus.COMPLETED:
            stage = "done"
        row = self.store.finish_task(task_id, status, guard, self.clock(), result=result, error=error,
                                     stage=stage)
        if row is not None:
            self.announce(row)
        return row

    def announce(self, row) -> None:
        """Tell everyone a task ended (also for a task born completed from the cache)."""
        self.notifier.publish(row["id"])
        for hook in self._hooks:
            try:
                hook(row)
            except Exception:  # a hook must never break the transition that already committed
                logger.exception("finished-hook failed for task %s", row["id"])

    def cancel(self, task_id: str, tenant: str) -> tuple[str, object]:
        """('cancelled', row) when no attempt held it, ('requested', row) when one runs it,
        ('finished', row) or ('missing', None)."""
        for _ in range(CANCEL_TRIES):
            row = self.finish(task_id, TaskStatus.CANCELLED, Guard.client(tenant),
                              error=("cancel", "cancelled by the client"))
            if row is not None:
                logger.info("task %s cancelled while pending", task_id)
                return "cancelled", row
            if self.store.request_cancel(task_id, tenant, self.clock()):
                logger.info("task %s cancel requested while processing", task_id)
                self.notifier.publish(task_id)
                self.notifier.announce_cancel(task_id)
                return "requested", self.store.get_task(task_id, tenant)
            row = self.store.get_task(task_id, tenant)
            if row is None:
                return "missing", None
            if TaskStatus(row["status"]).is_terminal:
                return "finished", row
            # Claimed, handed off or retried between the two statements: look again.
        return "finished", self.store.get_task(task_id, tenant)
