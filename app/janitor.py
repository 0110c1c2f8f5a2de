"""Periodic housekeeping: deadlines, expired leases, lost queue entries, retention, orphan files.

One round at a time across every process of the service: the round runs only while this process
holds the store's `janitor` lock (always, in the embedded mode; a PostgreSQL advisory lock in the
distributed one).
"""
from __future__ import annotations

import logging
import threading

from .artifacts import TaskArtifacts
from .engine.store import Guard
from .models import TaskStatus
from .storage import TEMP_GRACE

logger = logging.getLogger(__name__)

ORPHAN_GRACE = 3600.0  # a file no task names, older than this, was left by a crash mid-upload


class Janitor:
    """One named thread, owned by the pool or worker; sleeps on its owner's stop event between rounds."""

    def __init__(self, settings, store, files, lifecycle, dispatcher, clock, *, refill=None):
        self.settings = settings
        self.store = store
        self.files = files
        self.lifecycle = lifecycle
        self.dispatcher = dispatcher
        self.clock = clock
        self.refill = refill  # embedded: put every pending task back into a queue that overflowed
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
            except Exception:  # housekeeping must survive a bad round (disk, lock); the next round retries
                logger.exception("janitor round failed")

    def run_once(self) -> dict:
        """One round, if no other process is running one; returns what it did (tests and logs read it)."""
        with self.store.exclusive("janitor") as mine:
            if not mine:
                return {}
            now = self.clock()
            report = {"expired": self.expire_deadlines(now)}
            report.update(self.take_back_expired(now))
            report["redispatched"] = self.redispatch(now)
            report.update(self.retention(now))
            report["refilled"] = self.refill() if self.refill else 0
        if any(report.values()):
            logger.info("janitor: %s", report)
        return report

    # -- tasks -----------------------------------------------------------------------------------
    def expire_deadlines(self, now: float) -> int:
        """Attempts past their deadline fail; their late writes then change nothing."""
        ended = 0
        for task_id in self.store.past_deadline(now):
            if self.lifecycle.finish(task_id, TaskStatus.FAILED, Guard.deadline(now),
                                     error=("timeout", "task passed its deadline (DOCPROC_TASK_TIMEOUT)")):
                logger.warning("task %s failed: passed its deadline", task_id)
                ended += 1
        return ended

    def take_back_expired(self, lease_cutoff: float) -> dict:
        """Tasks whose holder stopped renewing its lease: resumed, cancelled, or failed past max resumes."""
        now = self.clock()
        resumed = ended = 0
        max_resumes = self.settings.max_resumes
        for row in self.store.lease_expired(lease_cutoff):
            task_id = row["id"]
            if row["cancel_requested"]:
                outcome = (TaskStatus.CANCELLED, ("recovery", "cancelled while its worker was gone"))
            elif row["resumes"] >= max_resumes:
                outcome = (TaskStatus.FAILED, ("recovery", f"its worker died while running this task "
                                                           f"{max_resumes + 1} times; giving up"))
            else:
                back = self.store.requeue_expired(task_id, now, lease_cutoff, max_resumes)
                if back is not None:
                    logger.warning("task %s resumed: the worker running it stopped", task_id)
                    self.dispatcher.dispatch(task_id, back["priority"], phase=back["phase"])
                    self.lifecycle.notifier.publish(task_id)
                    resumed += 1
                continue
            status, error = outcome
            if self.lifecycle.finish(task_id, status, Guard.lease(lease_cutoff), error=error):
                if status is TaskStatus.FAILED:
                    logger.error("task %s failed: the service died while running it too many times", task_id)
                else:
                    logger.info("task %s cancelled: a cancel was asked for while its worker was gone", task_id)
                ended += 1
        return {"resumed": resumed, "given_up": ended}

    def redispatch(self, now: float) -> int:
        """Offer again the due tasks whose queue entry may be lost (a broker restart, a full queue)."""
        rows = self.store.undispatched(now, now - self.settings.redispatch_after)
        sent = [r["id"] for r in rows if self.dispatcher.dispatch(r["id"], r["priority"], phase=r["phase"])]
        if sent:
            self.store.mark_dispatched(sent, now)
        return len(sent)

    # -- files -----------------------------------------------------------------------------------
    def retention(self, now: float) -> dict:
        purged_tasks, hashes = self.store.purgeable_files(now - self.settings.file_retention)
        removed = sum(self.files.delete_unless_pinned(h, self._still_needed(now)) for h in hashes)
        if purged_tasks:
            self.store.mark_files_purged(purged_tasks)
        artifacts = TaskArtifacts(self.settings.artifacts_dir)
        for task_id in purged_tasks:  # text layers and previews go with the files they were made from
            artifacts.remove(task_id)
        deleted = self.store.delete_finished_tasks(now - self.settings.task_retention)
        orphans = 0
        for sha, mtime in list(self.files.all_hashes()):
            if mtime < now - ORPHAN_GRACE:
                orphans += self.files.delete_unless_pinned(sha, self.store.file_is_referenced)
        for task_id in artifacts.task_ids():  # what a deleted task (or a crash mid-write) left
            if _older_than(artifacts.dir(task_id), now - ORPHAN_GRACE) and self.store.get_task(task_id) is None:
                orphans += artifacts.remove(task_id)
        temporaries = self.files.remove_stale_temporaries(now - TEMP_GRACE)
        return {"files_removed": removed, "tasks_deleted": deleted, "orphans_removed": orphans,
                "temporaries_removed": temporaries}

    def _still_needed(self, now: float):
        cutoff = now - self.settings.file_retention

        def needed(sha: str) -> bool:
            # Re-checked under the file store's lock: a task submitted since the scan keeps its file.
            return self.store.file_needed_since(sha, cutoff)
        return needed


def _older_than(path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False
