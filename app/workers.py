"""The embedded worker pool: owns the worker threads, the OCR slots, the janitor, leases and shutdown.

Each worker thread is one step in a loop (`run_once`: take an id from the queue, execute it).
The data directory is locked (flock), so at start every task left `processing` belongs to a
process that is gone: its lease is treated as expired at once and the task resumes.
"""
from __future__ import annotations

import fcntl
import logging
import math
import os
import threading
import time

from .engine.execute import LeaseKeeper

logger = logging.getLogger(__name__)

LEASE_RENEWALS = 4  # renewals per lease length: a stalled renewal still leaves three before it expires


class DataDirBusy(RuntimeError):
    """Another docproc process already serves this data directory."""


class WorkerPool:
    """N named worker threads over the in-process queue, with their owner's stop event and shutdown."""

    def __init__(self, settings, executor, queue, store, ocr_pool, janitor, *, clock=time.time, companions=()):
        self.settings = settings
        self.executor = executor
        self.queue = queue
        self.store = store
        self.ocr_pool = ocr_pool
        self.janitor = janitor
        self.clock = clock
        self.leases = LeaseKeeper(executor, settings.lease_seconds / LEASE_RENEWALS)
        self.companions = list(companions)  # start() after the workers, stop(timeout) after them (webhooks)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock_file = None
        self.started = False

    # -- start ---------------------------------------------------------------------------
    def start(self) -> None:
        """Take the data dir, take back what a dead process held, fill the queue, start threads."""
        self._take_data_dir()
        # Only this process can hold tasks of this data dir, so every lease in it has run out.
        self.janitor.take_back_expired(math.inf)
        queued = self.refill(force=True)
        logger.info("worker pool starting: %d workers, %d OCR slots, %d tasks queued",
                    self.settings.effective_workers, self.settings.effective_ocr_concurrency, queued)
        self.ocr_pool.start()
        for i in range(self.settings.effective_workers):
            name = f"docproc-worker-{i}"
            t = threading.Thread(target=self._loop, args=(name,), name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.leases.start(self._stop)
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
        if not force and not self.queue.overflowed:
            return 0
        self.queue.overflowed = False
        n = 0
        for row in self.store.pending_tasks():
            if not self.queue.put(row["id"], row["priority"], not_before=row["not_before"]):
                break
            n += 1
        return n

    # -- the worker step -------------------------------------------------------------------
    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                self.run_once(name)
            except Exception:  # outside any task (a storage fault taking an id): keep the worker alive
                logger.exception("%s: step failed; continuing", name)
                self._stop.wait(1.0)

    def run_once(self, name: str = "worker", timeout: float | None = None) -> bool:
        """Take one id from the queue and run its task; False when there was none."""
        task_id = self.queue.get(timeout)
        if task_id is None:
            return False
        if not self._stop.is_set():
            self.executor.execute(task_id, name)
        return True

    # -- introspection -------------------------------------------------------------------
    def busy(self) -> int:
        return self.executor.busy()

    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    def expected(self) -> int:
        return self.settings.effective_workers

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
        released = self.executor.release_all()
        # The grace period bounds the whole drain: pages still in tesseract belong to released tasks.
        self.ocr_pool.stop(timeout=max(0.0, end - time.monotonic()))
        self.janitor.join(5.0)
        self.leases.join(5.0)
        for companion in self.companions:
            companion.stop(timeout=5.0)
        self._threads = []
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
        self.started = False
        return released
