"""The one step that runs a task: claim -> OCR and the strategy -> finish. Worker threads (embedded)
and Celery tasks (distributed) both call `Executor.execute(task_id)`.

Where steps are split across queues (Celery: `ocr`, then `extract`), a claimed task whose pages
are not read yet only reads them, hands the row off and dispatches its extraction; otherwise the
whole strategy runs under one claim. While an attempt runs, its lease is renewed (LeaseKeeper);
a holder that stops renewing loses the task to the janitor, and its guarded writes then match no row.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid

from .. import backoff, jsonio
from ..errors import (PermanentError, StorageError, TaskCancelled, TaskError, TaskLost, TaskTimedOut,
                      TransientError)
from ..models import TaskStatus
from ..strategies import STRATEGIES
from ..strategies.base import TaskContext
from .persist import persist
from .store import Guard

logger = logging.getLogger(__name__)


class Executor:
    """Runs attempts; knows which ones this process holds (for leases, cancels and shutdown)."""

    def __init__(self, settings, services, lifecycle, dispatcher, notifier, *, registry=None, clock=time.time):
        self.settings = settings
        self.services = services
        self.store = services.db
        self.lifecycle = lifecycle
        self.dispatcher = dispatcher
        self.notifier = notifier
        self.registry = registry if registry is not None else STRATEGIES
        self.clock = clock
        self._running: dict[str, TaskContext] = {}
        self._lock = threading.Lock()
        notifier.on_cancel(self._cancel_heard)

    def _persist(self, call, what: str):
        return persist(call, budget=self.settings.storage_retry_seconds, what=what)

    # -- one step ---------------------------------------------------------------------------
    def execute(self, task_id: str, worker: str = "worker") -> None:
        """Claim the task and run its next step; nothing happens when it is not claimable."""
        now = self.clock()
        claim = uuid.uuid4().hex
        try:
            row = self._persist(lambda: self.store.claim_task(
                task_id, claim, now, now + self.settings.task_timeout, now + self.settings.lease_seconds), "claim")
        except StorageError as exc:  # still pending: the janitor offers it again
            logger.error("task %s not claimed: %s", task_id, exc.message)
            return
        if row is None:
            return  # cancelled, already taken, not due yet, or a stale duplicate id
        ctx = TaskContext(row, claim, self.services, jsonio.loads(row["input"]))
        with self._lock:
            self._running[task_id] = ctx
        self.notifier.publish(task_id)
        logger.info("task %s started: type=%s phase=%s attempt=%d worker=%s", task_id, row["type"], row["phase"],
                    row["attempts"], worker)
        try:
            self._run(ctx, row)
        finally:
            with self._lock:
                self._running.pop(task_id, None)

    def _run(self, ctx: TaskContext, row) -> None:
        """Run the step and write exactly one outcome; the one place for a broad except."""
        task_id = ctx.task_id
        try:
            if self.dispatcher.split_steps and row["phase"] == "ocr":
                ctx.ocr_pages()
                self._hand_off(ctx)
                return
            result = self.registry[row["type"]].run(ctx)
        except TaskLost:
            logger.warning("task %s: this attempt lost the task (deadline, lease or shutdown); result dropped", task_id)
            return
        except StorageError as exc:
            logger.error("task %s: storage fault (%s); left to the janitor once its lease expires", task_id, exc.message)
            return
        except TaskCancelled:
            self._end(ctx, TaskStatus.CANCELLED, error=(ctx.stage, "cancelled by the client"))
            logger.info("task %s cancelled at stage %s", task_id, ctx.stage)
            return
        except TaskError as exc:
            self._failed(ctx, row, exc)
            return
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            logger.exception("task %s: internal error %s at stage %s", task_id, error_id, ctx.stage)
            self._failed(ctx, row, PermanentError(f"internal error {error_id}: {type(exc).__name__}", stage=ctx.stage))
            return
        if self._end(ctx, TaskStatus.COMPLETED, result=result):
            logger.info("task %s completed in %.2fs", task_id, self.clock() - row["updated_at"])
        else:
            logger.warning("task %s: finished after losing the task (deadline or cancel); result dropped", task_id)

    def _end(self, ctx: TaskContext, status: TaskStatus, **outcome) -> bool:
        try:
            return self._persist(lambda: self.lifecycle.finish(
                ctx.task_id, status, Guard.attempt(ctx.claim), **outcome), "finish") is not None
        except StorageError as exc:
            logger.error("task %s: could not record its end (%s); it runs again once its lease expires",
                         ctx.task_id, exc.message)
            return False

    def _hand_off(self, ctx: TaskContext) -> None:
        now = self.clock()
        if self._persist(lambda: self.store.hand_off(ctx.task_id, ctx.claim, "extract", "extract queued", now),
                         "hand-off"):
            self.dispatcher.dispatch(ctx.task_id, ctx.priority, phase="extract")
            self.notifier.publish(ctx.task_id)

    def _failed(self, ctx: TaskContext, row, exc: TaskError) -> None:
        now = self.clock()
        stage = exc.stage or ctx.stage
        if ctx.deadline <= now and not isinstance(exc, TaskTimedOut):
            exc = TaskTimedOut(f"task passed its deadline ({exc.message})", stage=stage)
        if isinstance(exc, TransientError) and row["attempts"] < self.settings.max_attempts:
            delay = backoff.delay(row["attempts"], self.settings.retry_base_delay, self.settings.retry_max_delay,
                                  retry_after=exc.retry_after)
            phase = "extract" if ctx.pages_read else "ocr"
            try:
                retried = self._persist(lambda: self.store.retry_later(
                    ctx.task_id, ctx.claim, stage, exc.message, now, now + delay, phase), "retry")
            except StorageError:
                return  # the lease runs out and the janitor takes the task back
            if retried:
                logger.warning("task %s: attempt %d failed at %s (%s); retry in %.1fs",
                               ctx.task_id, row["attempts"], stage, exc.message, delay)
                self.dispatcher.dispatch(ctx.task_id, ctx.priority, phase=phase, not_before=now + delay)
                self.notifier.publish(ctx.task_id)
            else:  # a cancel asked for during the attempt wins over the retry
                self._end(ctx, TaskStatus.CANCELLED, error=(stage, "cancelled by the client"))
            return
        message = exc.message
        if isinstance(exc, TransientError):
            message = f"{message} (gave up after {row['attempts']} attempts)"
        if self._end(ctx, TaskStatus.FAILED, error=(stage, message)):
            logger.error("task %s failed at %s: %s", ctx.task_id, stage, message)

    # -- what this process holds ---------------------------------------------------------------
    def running(self) -> dict[str, str]:
        """{task id: claim} of the attempts in flight here."""
        with self._lock:
            return {task_id: ctx.claim for task_id, ctx in self._running.items()}

    def busy(self) -> int:
        with self._lock:
            return len(self._running)

    def renew_leases(self) -> int:
        """Extend the lease of every attempt this process runs."""
        return self.store.extend_leases(self.running(), self.clock() + self.settings.lease_seconds)

    def _cancel_heard(self, task_id: str) -> None:
        with self._lock:
            ctx = self._running.get(task_id)
        if ctx is not None:
            ctx.abort(kill=True)  # its running tesseract stops now; the attempt ends at its checkpoint

    def release_all(self) -> list[str]:
        """Shutdown: give back every task still running here; a cancel asked for meanwhile wins."""
        with self._lock:
            held = list(self._running.values())
        released = []
        for ctx in held:
            ctx.abort(kill=True)
            try:
                if self.store.release_task(ctx.task_id, ctx.claim, self.clock()):
                    released.append(ctx.task_id)
                    logger.warning("task %s returned to pending: still running at shutdown", ctx.task_id)
                    self.dispatcher.dispatch(ctx.task_id, ctx.priority, phase="extract" if ctx.pages_read else "ocr")
                    self.notifier.publish(ctx.task_id)
                elif self.lifecycle.finish(ctx.task_id, TaskStatus.CANCELLED, Guard.attempt(ctx.claim),
                                           error=("shutdown", "cancelled by the client")) is not None:
                    logger.info("task %s cancelled at shutdown (a cancel was asked for)", ctx.task_id)
            except StorageError as exc:
                logger.error("task %s: not released (%s); its lease expires and it runs again", ctx.task_id, exc.message)
        return released


class LeaseKeeper:
    """One named thread renewing the leases of the attempts an executor runs; owned by the pool or worker."""

    def __init__(self, executor: Executor, interval: float):
        self.executor = executor
        self.interval = interval
        self._thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self._loop, args=(stop,), name="docproc-leases", daemon=True)
        self._thread.start()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.executor.renew_leases()
            except Exception:  # a storage fault: the next round tries again, well within the lease
                logger.exception("renewing leases failed")

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
