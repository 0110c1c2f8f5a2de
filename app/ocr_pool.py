"""OCR slots bounded by the cores, shared fairly by page between running tasks.

Each task hands over all its pages at once; a slot always takes the next page of the
highest-priority task that was served least recently, so a 100-page PDF uses every free
core yet a one-page task submitted after it waits for one page, not for the whole PDF.

A running tesseract can be stopped at once (a cancel, the deadline, shutdown). pytesseract starts
it with its own Popen, so the pool finds it as a child of the slot's thread: Linux lists a thread's
children in /proc/self/task/<tid>/children. The pid is opened as a pidfd and checked against that
list again before the kill, so a process that ended and whose pid was reused is never signalled.
This costs nothing per page (no extra process, no pipe); a slot as a child process of its own would
cost a copy of every page image and a restart after each kill.
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable

logger = logging.getLogger(__name__)

REAP_SECONDS = 30.0  # at most this long a stopped page's slot is watched for a tesseract it starts late
REAP_INTERVAL = 0.02


@dataclass
class _PageJob:
    index: int
    page: object  # what read_page reads (a pages.PageRef): decoded in the slot, so a big PDF is not held decoded
    lang: str
    batch: "PageBatch"


class PageBatch:
    """The pages of one task in flight; the task's worker reads results as they come."""

    def __init__(self, pool: "OcrPool", key: str, count: int, deadline: float | None = None):
        self._pool = pool
        self.key = key
        self.count = count
        self.deadline = deadline  # wall-clock end of the task's attempt: no page may run past it
        self.results: queue.Queue = queue.Queue()
        self.aborted = False  # set by abort(): pages of this batch that start now are dropped

    def next_result(self, timeout: float | None):
        """(index, PageText or None, exception or None); raises queue.Empty on timeout."""
        return self.results.get(timeout=timeout)

    def abort(self, kill: bool = False) -> None:
        """Drop the pages not started yet (cancel, deadline, a failed page); kill=True also stops,
        at once, the tesseract of every page of this batch that is running now."""
        self.aborted = True
        self._pool._drop(self.key)
        if kill:
            self._pool._kill(lambda batch: batch is self)


class PageAborted(Exception):
    """A page whose tesseract was stopped because its batch was aborted."""


class OcrPool:
    """Owns `concurrency` OCR threads and the fair page scheduler that feeds them."""

    def __init__(self, read_page: Callable, concurrency: int, clock: Callable = time.time,
                 on_stop: Callable | None = None):
        self._read_page = read_page  # (page, lang, *, timeout=None) -> PageText
        self._clock = clock
        self._on_stop = on_stop  # after the slots ended: remove the OCR engine's files
        self._running: dict[int, PageBatch] = {}  # native thread id of a busy slot -> the batch of its page
        self.concurrency = concurrency
        self._jobs: "OrderedDict[str, tuple[int, deque]]" = OrderedDict()  # key -> (priority, pages)
        self._served: set[str] = set()  # keys in _jobs that got at least one page started
        self._cond = threading.Condition()
        self._stop = False
        self._threads: list[threading.Thread] = []
        self.busy = 0

    def start(self) -> None:
        for i in range(self.concurrency):
            t = threading.Thread(target=self._loop, name=f"docproc-ocr-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        """No more pages; running tesseracts are killed, the slots joined, the engine's files removed."""
        with self._cond:
            self._stop = True
            self._jobs.clear()
            self._served.clear()
            self._cond.notify_all()
        self.kill_running()
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        self._threads = []
        if self._on_stop is not None:
            self._on_stop()

    def kill_running(self) -> int:
        """Kill every running tesseract of the slots (shutdown; also safe from a signal handler)."""
        return self._kill(lambda batch: True)

    def _kill(self, which: Callable) -> int:
        with self._cond:
            slots = [(tid, batch) for tid, batch in self._running.items() if which(batch)]
            for _, batch in slots:
                batch.aborted = True
        killed = sum(_kill_children(tid) for tid, _ in slots)
        if slots:
            threading.Thread(target=self._reap, args=(slots,), name="docproc-ocr-reaper", daemon=True).start()
        return killed

    def _reap(self, slots: list) -> None:
        # A slot between two runs (decoding, levelling, before OSD) had no tesseract to kill yet: keep
        # killing what it starts until it lets go of the stopped page, which is soon.
        end = time.monotonic() + REAP_SECONDS
        while time.monotonic() < end:
            with self._cond:
                left = [tid for tid, batch in slots if self._running.get(tid) is batch]
            if not left:
                return
            for tid in left:
                _kill_children(tid)
            time.sleep(REAP_INTERVAL)

    def submit(self, key: str, priority: int, pages: list, lang: str,
               deadline: float | None = None) -> PageBatch:
        """Queue every page of one task; results arrive on the returned batch, indexed as given."""
        batch = PageBatch(self, key, len(pages), deadline)
        with self._cond:
            self._jobs[key] = (priority, deque(_PageJob(i, page, lang, batch) for i, page in enumerate(pages)))
            # Never served is least recently served: the new task goes ahead of every task
            # that already had a page, so a one-page task waits for one page, not two.
            for k in [k for k in self._jobs if k in self._served]:
                self._jobs.move_to_end(k)
            self._cond.notify(len(pages))
        return batch

    def pending_pages(self) -> int:
        with self._cond:
            return sum(len(q) for _, q in self._jobs.values())

    def _drop(self, key: str) -> None:
        with self._cond:
            self._jobs.pop(key, None)
            self._served.discard(key)

    def _take(self) -> _PageJob | None:
        with self._cond:
            while not self._stop:
                if self._jobs:
                    best = max(p for p, _ in self._jobs.values())
                    # First in order = served least recently among the best priority.
                    key = next(k for k, (p, _) in self._jobs.items() if p == best)
                    priority, pages = self._jobs.pop(key)
                    job = pages.popleft()
                    if pages:
                        self._jobs[key] = (priority, pages)  # back of the line
                        self._served.add(key)
                    else:
                        self._served.discard(key)
                    self.busy += 1
                    return job
                self._cond.wait()
            return None

    def _loop(self) -> None:
        tid = threading.get_native_id()
        while True:
            job = self._take()
            if job is None:
                return
            with self._cond:
                self._running[tid] = job.batch
            try:
                if job.batch.aborted:
                    raise PageAborted(f"page {job.index + 1} dropped: its task stopped")
                if job.batch.deadline is None:
                    page = self._read_page(job.page, job.lang)
                else:
                    # tesseract is killed at the task's deadline, so a late page frees its core.
                    page = self._read_page(job.page, job.lang, timeout=job.batch.deadline - self._clock())
                job.batch.results.put((job.index, page, None))
            except Exception as exc:  # handed to the task's worker, which decides
                if job.batch.aborted and not isinstance(exc, PageAborted):
                    exc = PageAborted(f"page {job.index + 1} stopped: its task stopped ({exc})")
                job.batch.results.put((job.index, None, exc))
            finally:
                with self._cond:
                    self._running.pop(tid, None)
                    self.busy -= 1


def _kill_children(tid: int) -> int:
    """SIGKILL the child processes (tesseract) that the thread `tid` of this process started."""
    path = f"/proc/self/task/{tid}/children"
    killed = 0
    for pid in _children(path):
        try:
            fd = os.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            continue  # ended meanwhile
        try:
            if pid in _children(path):  # still that thread's child: the pidfd is the same process
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                killed += 1
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)
    return killed


def _children(path: str) -> list[int]:
    try:
        with open(path) as fh:
            return [int(pid) for pid in fh.read().split()]
    except OSError:
        return []
