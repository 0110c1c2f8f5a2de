"""The worker pool: recovery at start, N named worker threads, retries, shutdown."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import threading
import time
import uuid

from .errors import PermanentError, TaskCancelled, TaskError, TaskLost, TaskTimedOut, TransientError
from .janitor import Janitor
from .models import TaskStatus
from .strategies import STRATEGIES
from .strategies.base import TaskContext

logger = logging.getLogger(__name__)


class DataDirBusy(RuntimeError):
    """Another docproc process already serves this data directory."""


class WorkerPool:
    """Owns the worker threads, the OCR slots, the janitor, the stop event and shutdown."""

    def __init__(self, settings, services, queue, events, *, registry=None, clock=time.time, companions=()):
        self.settings = settings
        self.services = services
        self.db = services.db
        self.queue = queue
        self.events = events
        self.registry = registry if registry is not None else STRATEGIES
        self.clock = clock
        self.janitor = Janitor(settings, self.db, services.store, events, self.refill, clock)
        self.companions = list(companions)  # start() after the workers, stop(timeout) after them (webhooks)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, str] = {}  # task id -> claim token of the attempt in flight
        self._running_lock = threading.Lock()
        self._lock_file = None
        self.started = False

    # -- start ---------------------------------------------------------------------------
    def start(self) -> None:
        """Take the data dir, recover what a dead process left, fill the queue, start threads."""
        self._take_data_dir()
        now = self.clock()
        resumed, failed = self.db.recover(now, self.settings.max_resumes)
        for task_id in resumed:
            logger.warning("task %s resumed after the service stopped mid-run", task_id)
        for task_id in failed:
            logger.error("task %s failed: the service died while running it too many times", task_id)
            self.events.finished(self.db.get_task(task_id))
        queued = self.refill(force=True)
        logger.info("worker pool starting: %d workers, %d OCR slots, %d tasks queued",
                    self.settings.effective_workers, self.settings.effective_ocr_concurrency, queued)
        self.services.ocr_pool.start()
        for i in range(self.settings.effective_workers):
            t = threading.Thread(target=self._loop, args=(f"docproc-worker-{i}",), name=f"docproc-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self.janitor.start(self._stop)
        for companion in self.companions:
            companion.start()
        self.started = True

    def _take_data_dir(self) -> None:
        path = self.settings.data_dir / ".lock"
        self._lock_file = open(path, "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise DataDirBusy(f"another docproc process is using {self.settings.data_dir}") from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()

    def refill(self, force: bool = False) -> int:
        """Queue every pending task from the database (at start, or after the queue overflowed)."""
        if not force and not getattr(self.queue, "overflowed", False):
            return 0
        if hasattr(self.queue, "overflowed"):
            self.queue.overflowed = False
        n = 0
        for row in self.db.pending_tasks():
            if not self.queue.put(row["id"], row["priority"], not_before=row["not_before"]):
                break
            n += 1
        return n

    # -- the worker step -------------------------------------------------------------------
    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                self.run_once(name)
            except Exception:  # the database hiccuped outside a task (disk, lock): keep the worker alive
                logger.exception("%s: step failed; continuing", name)
                self._stop.wait(1.0)

    def run_once(self, name: str = "worker", timeout: float | None = None) -> bool:
        """Take one id from the queue and run its task; False when there was none."""
        task_id = self.queue.get(timeout)
        if task_id is None:
            return False
        try:
            if not self._stop.is_set():
                self._run(task_id, name)
        finally:
            self.queue.ack(task_id)
        return True

    def _run(self, task_id: str, worker: str) -> None:
        now = self.clock()
        claim = uuid.uuid4().hex
        row = self.db.claim_task(task_id, claim, now, now + self.settings.task_timeout)
        if row is None:
            return  # cancelled, already taken, or a stale duplicate id: nothing to do
        with self._running_lock:
            self._running[task_id] = claim
        self.events.publish(task_id)
        logger.info("task %s started: type=%s attempt=%d worker=%s", task_id, row["type"], row["attempts"], worker)
        ctx = TaskContext(row, claim, self.services, json.loads(row["input"]))
        try:
            self._finish(ctx, row)
        finally:
            with self._running_lock:
                self._running.pop(task_id, None)
        final = self.db.get_task(task_id)
        if final is not None and TaskStatus(final["status"]).is_terminal:
            self.events.finished(final)
        else:
            self.events.publish(task_id)

    def _finish(self, ctx: TaskContext, row) -> None:
        """Run the strategy and write exactly one outcome; the one place for a broad except."""
        task_id, claim, db = ctx.task_id, ctx.claim, self.db
        try:
            result = self.registry[row["type"]].run(ctx)
        except TaskLost:
            logger.warning("task %s: this attempt lost the task (deadline or shutdown); result dropped", task_id)
            return
        except TaskCancelled:
            db.fail_task(task_id, claim, ctx.stage, "cancelled by the client", self.clock(), TaskStatus.CANCELLED)
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
        if db.complete_task(task_id, claim, result, self.clock()):
            logger.info("task %s completed in %.2fs", task_id, self.clock() - row["updated_at"])
        else:
            logger.warning("task %s: finished after losing the task (deadline or cancel); result dropped", task_id)

    def _failed(self, ctx: TaskContext, row, exc: TaskError) -> None:
        now = self.clock()
        stage = exc.stage or ctx.stage
        if ctx.deadline <= now and not isinstance(exc, TaskTimedOut):
            exc = TaskTimedOut(f"task passed its deadline ({exc.message})", stage=stage)
        if isinstance(exc, TransientError) and row["attempts"] < self.settings.max_attempts:
            delay = self.backoff(row["attempts"], exc.retry_after)
            if self.db.retry_later(ctx.task_id, ctx.claim, stage, exc.message, now, now + delay):
                logger.warning("task %s: attempt %d failed at %s (%s); retry in %.1fs",
                               ctx.task_id, row["attempts"], stage, exc.message, delay)
                self.queue.put(ctx.task_id, row["priority"], not_before=now + delay)
            return
        message = exc.message
        if isinstance(exc, TransientError):
            message = f"{message} (gave up after {row['attempts']} attempts)"
        if self.db.fail_task(ctx.task_id, ctx.claim, stage, message, now):
            logger.error("task %s failed at %s: %s", ctx.task_id, stage, message)

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Exponential with jitter, never shorter than the server's Retry-After."""
        base = min(self.settings.retry_max_delay, self.settings.retry_base_delay * 2 ** (attempts - 1))
        delay = base * random.uniform(0.5, 1.0)
        if retry_after:
            delay = max(delay, min(retry_after, self.settings.retry_max_delay))
        return delay

    # -- introspection -------------------------------------------------------------------
    def busy(self) -> int:
        with self._running_lock:
            return len(self._running)

    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- stop ----------------------------------------------------------------------------
    def stop(self, grace: float | None = None) -> list[str]:
        """Warm stop: no new tasks, running ones get `grace` seconds, the rest go back to pending."""
        grace = self.settings.shutdown_grace if grace is None else grace
        self._stop.set()
        self.queue.close()
        end = time.monotonic() + grace
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        with self._running_lock:
            left = dict(self._running)
        released = [tid for tid, claim in left.items() if self.db.release_task(tid, claim, self.clock())]
        for task_id in released:
            logger.warning("task %s returned to pending: still running at shutdown", task_id)
        # The grace period bounds the whole drain: a page still in tesseract after it is abandoned
        # (its task is pending again), not waited for.
        self.services.ocr_pool.stop(timeout=max(0.0, end - time.monotonic()))
        self.janitor.join(5.0)
        for companion in self.companions:
            companion.stop(timeout=5.0)
        self._threads = []
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
        self.started = False
        return released
