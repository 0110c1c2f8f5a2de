"""Change notifications across processes: PostgreSQL's LISTEN/NOTIFY feeding a LocalNotifier.

A change made here wakes local waiters at once and is sent with pg_notify right after the
statement that made it; one listener thread per process hears the others' and feeds them to the
same condition variable, so long-polls, event streams and the cancel-kill work whichever process
made the change. Nothing here is durable: a notification lost while the listener reconnects is
made up for by waking every waiter, who then reads the database again.
"""
from __future__ import annotations

import logging
import threading
import uuid

import psycopg

from ..errors import StorageError
from .notify import LocalNotifier

logger = logging.getLogger(__name__)

TASK_CHANNEL = "docproc_task"
CANCEL_CHANNEL = "docproc_cancel"
POLL_SECONDS = 0.5  # the listener looks at its stop flag this often
MAX_RECONNECT_DELAY = 5.0


class PostgresNotifier(LocalNotifier):
    """A LocalNotifier whose changes also reach, and come from, every other process on the database."""

    def __init__(self, database, *, remember: int = 100_000):
        super().__init__(remember=remember)
        self.database = database  # PostgresDatabase: its pool sends, its URL listens
        self.origin = uuid.uuid4().hex[:12]  # our own notifications come back to us: skip them
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()

    # -- sending -----------------------------------------------------------------------------
    def publish(self, task_id: str) -> None:
        self.heard(task_id)
        self._send(TASK_CHANNEL, task_id)

    def announce_cancel(self, task_id: str) -> None:
        self.heard_cancel(task_id)
        self._send(CANCEL_CHANNEL, task_id)

    def _send(self, channel: str, task_id: str) -> None:
        try:
            self.database.write("SELECT pg_notify(?, ?)", (channel, f"{self.origin}:{task_id}"))
        except StorageError as exc:  # waiters elsewhere still wake at their timeout and read again
            logger.warning("task %s: change not announced to other processes: %s", task_id, exc.message)

    # -- listening ---------------------------------------------------------------------------
    def start(self) -> "PostgresNotifier":
        """Start the listener thread (owned by this notifier; close() stops it)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._listen, name="docproc-listener", daemon=True)
            self._thread.start()
        return self

    def _listen(self) -> None:
        delay, connected_before = 0.1, False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.database.url, autocommit=True, application_name="docproc-listener") as conn:
                    conn.execute(f"LISTEN {TASK_CHANNEL}")
                    conn.execute(f"LISTEN {CANCEL_CHANNEL}")
                    if connected_before:
                        logger.info("listener reconnected; waiters look again")
                        self.heard_all()
                    connected_before, delay = True, 0.1
                    self.listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=POLL_SECONDS):
                            self._dispatch(note.channel, note.payload)
            except psycopg.Error as exc:
                self.listening.clear()
                if self._stop.is_set():
                    break
                logger.warning("listener lost its connection (%s); reconnecting in %.1fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
        self.listening.clear()

    def _dispatch(self, channel: str, payload: str) -> None:
        origin, _, task_id = payload.partition(":")
        if origin == self.origin or not task_id:
            return
        if channel == CANCEL_CHANNEL:
            self.heard_cancel(task_id)
        else:
            self.heard(task_id)

    def close(self) -> None:
        super().close()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(POLL_SECONDS * 4 + 1)
            self._thread = None
