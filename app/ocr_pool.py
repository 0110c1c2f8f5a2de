"""OCR slots bounded by the cores, shared fairly by page between running tasks.

Each task hands over all its pages at once; a slot always takes the next page of the
highest-priority task that was served least recently, so a 100-page PDF uses every free
core yet a one-page task submitted after it waits for one page, not for the whole PDF.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable

logger = logging.getLogger(__name__)


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

    def next_result(self, timeout: float | None):
        """(index, PageText or None, exception or None); raises queue.Empty on timeout."""
        return self.results.get(timeout=timeout)

    def abort(self) -> None:
        """Drop the pages not started yet (cancel, deadline, a failed page)."""
        self._pool._drop(self.key)


class OcrPool:
    """Owns `concurrency` OCR threads and the fair page scheduler that feeds them."""

    def __init__(self, read_page: Callable, concurrency: int, clock: Callable = time.time):
        self._read_page = read_page  # (page, lang, *, timeout=None) -> PageText
        self._clock = clock
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
        with self._cond:
            self._stop = True
            self._jobs.clear()
            self._served.clear()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

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
        while True:
            job = self._take()
            if job is None:
                return
            try:
                if job.batch.deadline is None:
                    page = self._read_page(job.page, job.lang)
                else:
                    # tesseract is killed at the task's deadline, so a late page frees its core.
                    page = self._read_page(job.page, job.lang, timeout=job.batch.deadline - self._clock())
                job.batch.results.put((job.index, page, None))
            except Exception as exc:  # handed to the task's worker, which decides
                job.batch.results.put((job.index, None, exc))
            finally:
                with self._cond:
                    self.busy -= 1
