"""Periodic housekeeping: deadlines, retention of files and tasks, orphan files, queue refill."""
from __future__ import annotations

import logging
import threading

from .artifacts import TaskArtifacts
from .storage import TEMP_GRACE

logger = logging.getLogger(__name__)

ORPHAN_GRACE = 3600.0  # a file no task names, older than this, was left by a crash mid-upload


class Janitor:
    """One named thread, owned by the worker pool; sleeps on the pool's stop event between rounds."""

    def __init__(self, settings, db, store, events, refill, clock):
        self.settings = settings
        self.db = db
        self.store = store
        self.events = events
        self.refill = refill
        self.clock = clock
        self._thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self._loop, args=(stop,), name="docproc-janitor", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread:
            self._thread.join(timeout)

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.janitor_interval):
            try:
                self.run_once()
            except Exception:  # housekeeping must survive a bad round (disk, lock); next round retries
                logger.exception("janitor round failed")

    def run_once(self) -> dict:
        """One round; returns what it did (tests and logs read it)."""
        now = self.clock()
        expired = self.db.expire_deadlines(now)
        for task_id in expired:
            logger.warning("task %s failed: passed its deadline", task_id)
            self.events.finished(self.db.get_task(task_id))
        purged_tasks, hashes = self.db.purgeable_files(now - self.settings.file_retention)
        removed = sum(self.store.delete_unless_pinned(h, self._still_needed(now)) for h in hashes)
        if purged_tasks:
            self.db.mark_files_purged(purged_tasks)
        artifacts = TaskArtifacts(self.settings.artifacts_dir)
        for task_id in purged_tasks:  # text layers and previews go with the files they were made from
            artifacts.remove(task_id)
        deleted = self.db.delete_finished_tasks(now - self.settings.task_retention)
        orphans = 0
        for sha, mtime in list(self.store.all_hashes()):
            if mtime < now - ORPHAN_GRACE:
                orphans += self.store.delete_unless_pinned(sha, self.db.file_is_referenced)
        for task_id in artifacts.task_ids():  # what a deleted task (or a crash mid-write) left
            if self.db.get_task(task_id) is None and self._older_than(artifacts.dir(task_id), now - ORPHAN_GRACE):
                orphans += artifacts.remove(task_id)
        temporaries = self.store.remove_stale_temporaries(now - TEMP_GRACE)
        refilled = self.refill()
        report = {"expired": len(expired), "files_removed": removed, "tasks_deleted": deleted,
                  "orphans_removed": orphans, "temporaries_removed": temporaries, "refilled": refilled}
        if any(report.values()):
            logger.info("janitor: %s", report)
        return report

    @staticmethod
    def _older_than(path, cutoff: float) -> bool:
        try:
            return path.stat().st_mtime < cutoff
        except OSError:
            return False

    def _still_needed(self, now: float):
        cutoff = now - self.settings.file_retention

        def needed(sha: str) -> bool:
            # Re-checked under the store's lock: a task submitted since the scan keeps its file.
            return self.db.file_needed_since(sha, cutoff)
        return needed
