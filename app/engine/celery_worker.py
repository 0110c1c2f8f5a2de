"""`docproc worker`: a Celery worker of ours, consuming the `ocr` and/or `extract` queues.

Around Celery's consumer runs the WorkerRole (app/engine/roles.py): the OCR slots (one tesseract
per core, the fair page scheduler), the lease keeper, the janitor, the notifier's listener and a
heartbeat. Celery's thread pool runs `Executor.execute` for each id it takes. SIGTERM is a warm
stop as in the embedded mode: no new ids, running attempts get DOCPROC_SHUTDOWN_GRACE, then
whatever still runs goes back to pending (and to the queue) for another worker.
"""
from __future__ import annotations

import logging
import os
import socket
import threading

from celery.signals import worker_ready, worker_shutting_down

from ..config import ConfigError, Settings
from ..logs import configure_logging
from .celery_app import QUEUES

logger = logging.getLogger(__name__)


def parse_queues(raw: str | None) -> list[str]:
    queues = [q.strip() for q in (raw or ",".join(QUEUES)).split(",") if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown or not queues:
        raise ConfigError(f"--queues takes {' and/or '.join(QUEUES)}, got {raw!r}")
    return queues


def run_worker(queues: list[str] | None = None, concurrency: int = 0, *, settings: Settings | None = None,
               ocr_engine=None, extractor=None) -> int:
    """Run until SIGTERM/SIGINT; the exit status. ocr_engine replaces tesseract (the benchmark's stub)."""
    from ..runtime import build_runtime

    try:
        settings = settings or Settings.from_env()
        queues = queues or list(QUEUES)
        if not (settings.broker_url and settings.database_url):
            raise ConfigError("docproc worker needs DOCPROC_BROKER_URL (Redis) and DOCPROC_DATABASE_URL (PostgreSQL)")
        configure_logging(settings)
        rt = build_runtime(settings, role="worker", ocr_engine=ocr_engine, extractor=extractor)
    except (ConfigError, OSError) as exc:
        os.write(2, f"docproc: cannot start the worker: {exc}\n".encode())
        return 2
    concurrency = concurrency or settings.effective_workers
    name = f"docproc-{os.getpid()}@{socket.gethostname()}"
    celery = rt.celery
    celery.docproc_runtime = rt

    def drain(**_kwargs):
        # Celery stops taking ids and waits for running tasks; ours get the grace period, then are released.
        threading.Thread(target=rt.pool.drain, args=(settings.shutdown_grace,), name="docproc-drain",
                         daemon=True).start()

    def ready(**_kwargs):
        logger.info("worker %s ready: consuming %s", name, ",".join(queues))

    worker_shutting_down.connect(drain, weak=False)
    worker_ready.connect(ready, weak=False)
    rt.pool.start(name, ",".join(queues), concurrency)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        # This process's counters (tasks it ended, stage times, tokens) and gauges (its threads, OCR slots).
        start_http_server(settings.metrics_port, addr=settings.host, registry=rt.metrics.registry)
    worker = celery.Worker(hostname=name, pool="threads", concurrency=concurrency, queues=queues,
                           loglevel=settings.log_level, quiet=True, without_heartbeat=True,
                           without_mingle=True, without_gossip=True, optimization="fair")
    try:
        worker.start()
    finally:
        worker_shutting_down.disconnect(drain)
        worker_ready.disconnect(ready)
        released = rt.pool.stop(0)
        if released:
            logger.warning("worker %s: %d tasks returned to pending at shutdown", name, len(released))
        close_extractor = getattr(rt.extractor, "close", None)
        if close_extractor is not None:
            close_extractor()
        rt.db.close_all()
        logger.info("worker %s stopped", name)
    return worker.exitcode or 0
