"""The long-lived parts of one service instance, built from settings; nothing starts here.

Three roles share one wiring: `embedded` (the default: SQLite or PostgreSQL, the in-process queue and
worker threads in this process), `api` (a broker is set: the HTTP API only, tasks go to Celery) and
`worker` (`docproc worker`: Celery consumes, nothing serves HTTP).
"""
from __future__ import annotations

import importlib.util
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial

from .artifacts import TaskArtifacts
from .config import ConfigError, Settings
from .documents import Documents
from .engine import open_store
from .engine.execute import Executor
from .engine.lifecycle import Lifecycle
from .engine.notify import LocalNotifier
from .engine.store import TaskStore
from .handoff import DecodedPages
from .intake import InspectionCache
from .janitor import Janitor
from .metrics import Metrics
from .ocr import Tesseract
from .ocr_pool import OcrPool
from .pages import PageReader
from .queue import LocalQueue
from .storage import FileStore
from .strategies.base import Services
from .webhooks import WebhookSender
from .workers import WorkerPool

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: TaskStore
    store: FileStore
    queue: object  # the Dispatcher: LocalQueue (embedded) or CeleryDispatcher
    events: LocalNotifier  # or its PostgresNotifier subclass
    lifecycle: Lifecycle
    ocr_engine: Tesseract
    ocr_pool: OcrPool
    extractor: object
    executor: Executor
    pool: object  # WorkerPool (embedded), ApiRole or WorkerRole (app/engine/roles.py)
    clock: object
    started_at: float
    metrics: Metrics | None = None
    inspections: InspectionCache = field(default_factory=InspectionCache)
    webhooks: WebhookSender | None = None
    documents: Documents | None = None
    role: str = "embedded"
    celery: object = None  # the Celery app of the distributed roles
    decoded: DecodedPages | None = None  # embedded: pages intake decoded, for this process's OCR slots

    @property
    def dispatcher(self):
        return self.queue

    @property
    def accepting(self) -> bool:
        return not self.pool.stopping and not self.events.closed


def make_extractor(settings: Settings):
    """The LLM client when an API key is set, else the built-in local extractor."""
    if settings.uses_llm:
        from .extract.llm import LLMExtractor

        return LLMExtractor(api_key=settings.openai_api_key, base_url=settings.openai_base_url or None,
                            model=settings.llm_model, timeout=settings.llm_timeout, json_mode=settings.llm_json_mode)
    from .extract.local import LocalExtractor

    return LocalExtractor()


def role_for(settings: Settings, role: str | None = None) -> str:
    """The role of this process: asked for, or `api` when a broker is set, else `embedded`."""
    role = role or ("api" if settings.broker_url else "embedded")
    if role != "embedded" and not (settings.broker_url and settings.database_url):
        raise ConfigError("the distributed mode needs both DOCPROC_BROKER_URL (Redis) and DOCPROC_DATABASE_URL"
                          " (PostgreSQL)")
    needed = (["psycopg", "psycopg_pool"] if settings.database_url else []) + (["celery"] if role != "embedded" else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"{', '.join(missing)} not installed: pip install 'docproc[scale]'")
    return role


def build_runtime(settings: Settings, *, clock=time.time, extractor=None, role: str | None = None,
                  ocr_engine=None) -> Runtime:
    """Create the data dir, open the database, apply the schema, wire every part for this process's role.

    ocr_engine replaces tesseract (anything with read/version/languages: the benchmark's fixed-cost stub).
    """
    role = role_for(settings, role)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_store(settings, clock=clock)
    store = FileStore(settings.files_dir)
    celery = None
    if role == "embedded":
        queue = LocalQueue(settings.queue_size, clock=clock)
        events = LocalNotifier()
    else:
        from .engine.celery_app import CeleryDispatcher, make_celery
        from .engine.postgres_notify import PostgresNotifier

        celery = make_celery(settings)
        queue = CeleryDispatcher(celery, clock=clock)
        events = PostgresNotifier(db.database)
    lifecycle = Lifecycle(db, events, clock)
    engine = ocr_engine or Tesseract(timeout=settings.ocr_timeout, max_pixels=settings.ocr_max_pixels)
    # Only the embedded process both takes uploads and reads them: elsewhere a decoded page would wait for no one.
    decoded = (DecodedPages(settings.decoded_handoff_mb * 1024 * 1024, max_pixels=settings.ocr_max_pixels)
               if role == "embedded" and settings.decoded_handoff_mb else None)
    reader = PageReader(engine, pdf_dpi=settings.pdf_dpi, decoded=decoded)
    ocr_pool = OcrPool(reader.read, settings.effective_ocr_concurrency, clock=clock,
                       on_stop=getattr(engine, "close", None))
    extractor = extractor or make_extractor(settings)
    llm_slots = threading.BoundedSemaphore(settings.llm_concurrency) if settings.uses_llm else None
    metrics = Metrics()
    services = Services(db=db, store=store, ocr_pool=ocr_pool, extractor=extractor, settings=settings,
                        clock=clock, llm_slots=llm_slots, on_usage=metrics.on_usage, on_stage=metrics.on_stage,
                        on_progress=events.publish)
    if role == "embedded":
        webhooks = WebhookSender(settings, db, partial(_tenant_secret, db), clock=clock)
    else:
        from .engine.roles import QueuedWebhooks

        webhooks = QueuedWebhooks(settings, db, partial(_tenant_secret, db), queue, clock=clock)
    lifecycle.on_finished(metrics.on_finished)
    lifecycle.on_finished(webhooks.on_finished)
    executor = Executor(settings, services, lifecycle, queue, events, clock=clock)
    janitor = Janitor(settings, db, store, lifecycle, queue, clock)
    if role == "embedded":
        pool = WorkerPool(settings, executor, queue, db, ocr_pool, janitor, clock=clock, companions=[webhooks])
        janitor.refill = pool.refill
    elif role == "api":
        from .engine.roles import ApiRole

        pool = ApiRole(settings, db, events, clock=clock)
    else:
        from .engine.roles import WorkerRole

        pool = WorkerRole(settings, executor, db, ocr_pool, janitor, events, webhooks, clock=clock)
    rt = Runtime(settings=settings, db=db, store=store, queue=queue, events=events, lifecycle=lifecycle,
                 ocr_engine=engine, ocr_pool=ocr_pool, extractor=extractor, executor=executor, pool=pool,
                 clock=clock, started_at=clock(), metrics=metrics, webhooks=webhooks, role=role, celery=celery,
                 decoded=decoded,
                 documents=Documents(db, store, TaskArtifacts(settings.artifacts_dir), reader))
    metrics.watch(rt)
    return rt


def _tenant_secret(db, tenant: str) -> str:
    from . import auth  # late: auth is a request-level module and may grow imports of its own

    return auth.tenant_secret(db, tenant)
