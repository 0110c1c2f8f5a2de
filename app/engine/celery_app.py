"""The distributed mode's queues: Celery over Redis, carrying task ids only (no result backend).

Two queues, as the two steps of a task: `ocr` (sized by the cores: one tesseract per core per
worker) and `extract` (extraction and webhooks, sized for I/O). A message is a task id; whoever
takes it runs `Executor.execute(task_id)`, whose guarded claim makes a duplicate or stale message
a no-op, and the janitor sends again what a lost message would have started. Every guarantee
comes from the database; Redis only says who should look next.
"""
from __future__ import annotations

import logging
import threading
import time

from celery import Celery

logger = logging.getLogger(__name__)

QUEUES = ("ocr", "extract")
TASK_NAMES = {"ocr": "docproc.ocr", "extract": "docproc.extract"}
WEBHOOK_TASK = "docproc.webhook"
MAX_PRIORITY = 9
DEPTH_CACHE_SECONDS = 1.0
VISIBILITY_MARGIN = 300.0  # seconds on top of the longest attempt before Redis hands an unacked message out again


def broker_priority(priority: int) -> int:
    """Our 9 (most urgent) .. 0 as kombu's Redis priority, where 0 is served first."""
    return MAX_PRIORITY - min(max(int(priority), 0), MAX_PRIORITY)


def make_celery(settings) -> Celery:
    """The Celery app for these settings: queues, priorities, late acks, no results; tasks registered."""
    app = Celery("docproc", broker=settings.broker_url, set_as_current=False)
    longest = settings.task_timeout + settings.retry_max_delay
    app.conf.update(
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,  # a worker killed mid-task leaves its message to be handed out again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker holds no more ids than it has threads: the rest wait by priority
        task_default_queue="ocr",
        task_queue_max_priority=MAX_PRIORITY,
        task_default_priority=broker_priority(5),
        broker_transport_options={
            "queue_order_strategy": "priority",
            "priority_steps": list(range(MAX_PRIORITY + 1)),
            "sep": ":",
            # Above the longest attempt (and a retry's wait): a slow task is not handed to a second worker.
            "visibility_timeout": longest + VISIBILITY_MARGIN,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a Redis restart is waited out, not fatal
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        task_serializer="json",
        accept_content=["json"],
    )
    app.docproc_runtime = None  # set by the worker before it consumes

    def runtime():
        rt = app.docproc_runtime
        if rt is None:
            raise RuntimeError("this Celery app has no docproc runtime (only `docproc worker` consumes)")
        return rt

    def execute(self, task_id: str) -> None:
        runtime().executor.execute(task_id, worker=self.request.hostname or "celery")

    for queue in QUEUES:
        app.task(name=TASK_NAMES[queue], bind=True, queue=queue, ignore_result=True)(execute)

    @app.task(name=WEBHOOK_TASK, queue="extract", ignore_result=True)
    def webhook(task_id: str, attempt: int) -> None:
        runtime().webhooks.deliver(task_id, attempt)

    return app


def _waiting(channel, queue: str) -> int:
    try:
        return channel.queue_declare(queue=queue, passive=True).message_count
    except Exception:  # kombu: a queue never used yet does not exist
        return 0


class CeleryDispatcher:
    """The Dispatcher of the distributed mode: one message per step, the id and its priority only."""

    split_steps = True  # OCR on `ocr`, then extraction on `extract`

    def __init__(self, celery: Celery, *, clock=time.time):
        self.celery = celery
        self.clock = clock
        self._depth = (0.0, 0)  # (monotonic time read, value)
        self._depth_lock = threading.Lock()

    def dispatch(self, task_id: str, priority: int, *, phase: str = "ocr", not_before: float | None = None) -> bool:
        countdown = max(0.0, not_before - self.clock()) if not_before is not None else None
        try:
            self.celery.send_task(TASK_NAMES[phase], args=(task_id,), queue=phase, priority=broker_priority(priority),
                                  countdown=countdown or None, retry=True,
                                  retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2})
        except Exception as exc:  # the broker is away: the row is in the database and the janitor sends it again
            logger.warning("task %s: not queued on %s (%s); the janitor sends it again", task_id, phase, exc)
            return False
        return True

    def send_webhook(self, task_id: str, attempt: int, delay: float) -> bool:
        try:
            self.celery.send_task(WEBHOOK_TASK, args=(task_id, attempt), queue="extract",
                                  countdown=delay or None, priority=broker_priority(5))
        except Exception as exc:
            logger.warning("task %s: webhook attempt %d not queued (%s)", task_id, attempt, exc)
            return False
        return True

    def depth(self) -> int:
        """Messages waiting in both queues (every priority), read from Redis at most once a second."""
        with self._depth_lock:
            at, value = self._depth
            if time.monotonic() - at < DEPTH_CACHE_SECONDS:
                return value
            try:
                with self.celery.connection_for_read() as conn:
                    value = sum(_waiting(conn.default_channel, q) for q in QUEUES)
            except Exception as exc:  # the broker is away: the last value stands
                logger.debug("queue depth unavailable: %s", exc)
            self._depth = (time.monotonic(), value)
            return value

    def close(self) -> None:
        self.celery.close()
