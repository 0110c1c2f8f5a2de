"""What runs in each process of the distributed mode, besides the HTTP server.

- ApiRole: `docproc serve` with a broker set. No workers, no data-dir lock: any number of these
  share one database and one DOCPROC_DATA_DIR. It hears changes (long-polls, event streams) through
  the notifier's listener and reads the workers' heartbeats for health and stats.
- WorkerRole: inside `docproc worker`, around the Celery consumer: the OCR slots, the lease keeper,
  the janitor (one round at a time across workers, by advisory lock), the listener and a heartbeat.
Both stand where the embedded mode has its WorkerPool (rt.pool): start(), stop(grace), busy(),
alive(), expected(), stopping, started.
"""
from __future__ import annotations

import logging
import threading
import time

from ..webhooks import MAX_RETRY_DELAY, RESUME_WINDOW, Delivery, WebhookSender, callback_url
from .execute import LeaseKeeper

logger = logging.getLogger(__name__)

LEASE_RENEWALS = 4  # as the embedded pool: a stalled renewal still leaves three before the lease ends
HEARTBEAT_SECONDS = 5.0
ALIVE_WITHIN = 3 * HEARTBEAT_SECONDS  # a worker silent longer than this counts as gone
REMEMBERED = 600.0  # a worker gone this recently makes health degraded; older rows are forgotten


class _Heartbeats:
    """Reads of the workers table, shared by both roles."""

    def __init__(self, store, clock):
        self.store = store
        self.clock = clock

    def live(self) -> list:
        try:
            return self.store.workers_seen_since(self.clock() - ALIVE_WITHIN)
        except Exception:  # health must answer while the database is away; it reports that elsewhere
            return []

    def remembered(self) -> list:
        try:
            return self.store.workers_seen_since(self.clock() - REMEMBERED)
        except Exception:
            return []


class ApiRole:
    """The API-only process: the workers are elsewhere; what they do is read from the database."""

    def __init__(self, settings, store, notifier, *, clock=time.time):
        self.settings = settings
        self.notifier = notifier
        self.heartbeats = _Heartbeats(store, clock)
        self._stop = threading.Event()
        self.started = False

    def start(self) -> None:
        if hasattr(self.notifier, "start"):
            self.notifier.start()
        self.started = True

    def stop(self, grace: float | None = None) -> list[str]:
        self._stop.set()
        self.notifier.close()
        self.started = False
        return []

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def busy(self) -> int:
        return sum(w["busy"] for w in self.heartbeats.live())

    def alive(self) -> int:
        """Worker threads of the worker processes that answered lately."""
        return sum(w["concurrency"] for w in self.heartbeats.live())

    def expected(self) -> int:
        """Worker threads of every worker seen in the last minutes (at least one: none at all is degraded)."""
        return max(sum(w["concurrency"] for w in self.heartbeats.remembered()), 1)


class WorkerRole:
    """The long-lived parts of a worker process around its Celery consumer, with one stop event."""

    def __init__(self, settings, executor, store, ocr_pool, janitor, notifier, webhooks, *, clock=time.time):
        self.settings = settings
        self.executor = executor
        self.store = store
        self.ocr_pool = ocr_pool
        self.janitor = janitor
        self.notifier = notifier
        self.webhooks = webhooks
        self.clock = clock
        self.heartbeats = _Heartbeats(store, clock)
        self.leases = LeaseKeeper(executor, settings.lease_seconds / LEASE_RENEWALS)
        self.name = ""
        self.queues = ""
        self.concurrency = 0
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._started_at = clock()
        self.started = False

    def start(self, name: str = "worker", queues: str = "ocr,extract", concurrency: int = 1) -> None:
        self.name, self.queues, self.concurrency = name, queues, concurrency
        self.notifier.start()
        self.ocr_pool.start()
        self.leases.start(self._stop)
        self.janitor.start(self._stop)
        self._beat_once()
        self._beat = threading.Thread(target=self._heartbeat, name="docproc-heartbeat", daemon=True)
        self._beat.start()
        self.started = True
        logger.info("worker %s: queues %s, %d threads, %d OCR slots", name, queues, concurrency,
                    self.ocr_pool.concurrency)

    def _beat_once(self) -> None:
        try:
            self.store.heartbeat(self.name, self.queues, self.concurrency, self.ocr_pool.concurrency,
                                 self.executor.busy(), self._started_at, self.clock())
        except Exception as exc:  # the next beat tries again; health shows this worker as gone meanwhile
            logger.warning("worker %s: heartbeat not written: %s", self.name, exc)

    def _heartbeat(self) -> None:
        swept = time.monotonic()
        while not self._stop.wait(min(HEARTBEAT_SECONDS, self.settings.lease_seconds / LEASE_RENEWALS)):
            self._beat_once()
            if time.monotonic() - swept >= self.settings.janitor_interval:
                swept = time.monotonic()
                try:
                    self.webhooks.resend_lost()
                    self.store.forget_workers_before(self.clock() - REMEMBERED)  # rows of workers long gone
                except Exception:  # the next round tries again
                    logger.exception("webhook and worker sweep failed")

    def drain(self, grace: float) -> list[str]:
        """Warm stop: running attempts get `grace` seconds, then go back to pending for another worker."""
        end = time.monotonic() + grace
        while self.executor.busy() and time.monotonic() < end:
            time.sleep(0.05)
        return self.executor.release_all()

    def stop(self, grace: float | None = None) -> list[str]:
        released = self.drain(self.settings.shutdown_grace if grace is None else grace)
        self._stop.set()
        self.ocr_pool.stop(timeout=5.0)
        for part in (self.janitor, self.leases):
            part.join(5.0)
        if self._beat is not None:
            self._beat.join(5.0)
        try:
            self.store.forget_worker(self.name)
        except Exception as exc:
            logger.warning("worker %s: heartbeat row left behind: %s", self.name, exc)
        self.notifier.close()
        self.started = False
        return released

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def busy(self) -> int:
        return self.executor.busy()

    def alive(self) -> int:
        return self.concurrency if self.started else 0

    def expected(self) -> int:
        return self.concurrency


class QueuedWebhooks(WebhookSender):
    """Webhook attempts as messages on the `extract` queue: whichever worker takes one makes it."""

    def __init__(self, settings, db, secret_for, dispatcher, *, clock=time.time):
        super().__init__(settings, db, secret_for, clock=clock, threads=0)
        self.dispatcher = dispatcher

    def _schedule(self, delivery: Delivery, delay: float, *, retry: bool = False) -> None:
        self.dispatcher.send_webhook(delivery.task_id, delivery.attempt, delay)

    def start(self) -> None:
        """No threads of its own: the workers' Celery threads make the attempts."""

    def stop(self, timeout: float = 10.0) -> None:
        """Nothing waits here: unsent attempts are messages in the broker."""

    def resend_lost(self) -> int:
        """Attempts whose message was lost (a broker restart): sent again, by one worker at a time.

        A first attempt is lost when none was made `redispatch_after` past the finish; a retry when
        none followed the last failed attempt within the longest backoff plus that grace. A message
        that was only late still finds its attempt made and is dropped as a duplicate in `deliver`.
        """
        now = self.clock()
        grace = self.settings.redispatch_after
        with self.db.exclusive("webhooks") as mine:
            if not mine:
                return 0
            lost = [(r["id"], r["last_attempt"] + 1)
                    for r in self.db.webhooks_to_resume(now - RESUME_WINDOW, self.settings.webhook_attempts)
                    if (r["completed_at"] < now - grace if r["last_attempt"] == 0
                        else r["last_at"] < now - MAX_RETRY_DELAY - grace)]
            for task_id, attempt in lost:
                logger.warning("task %s: webhook attempt %d was never made; sending it again", task_id, attempt)
                self.dispatcher.send_webhook(task_id, attempt, 0.0)
        return len(lost)

    def deliver(self, task_id: str, attempt: int) -> None:
        """One attempt, unless this message is a duplicate of one already made (or delivered)."""
        row = self.db.get_task(task_id)
        url = callback_url(row) if row is not None else None
        if url is None:
            return
        if any(a["delivered"] or a["attempt"] >= attempt for a in self.db.webhook_attempts(task_id)):
            logger.info("task %s: webhook attempt %d already made; duplicate message dropped", task_id, attempt)
            return
        self.attempt(Delivery(row["id"], row["tenant"], url, self._body(row), attempt))
