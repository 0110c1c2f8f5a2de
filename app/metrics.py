"""Prometheus metrics of one service instance, in a registry of its own (many apps share a test process)."""
from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from .models import TASK_TYPES

logger = logging.getLogger(__name__)

WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
STAGES = ("ocr", "extract", "fill")
_FINISHED = {"completed": "completed", "failed": "failed", "cancelled": "cancelled"}


class Metrics:
    """Counters and histograms fed by hooks; gauges read from the runtime at scrape time."""

    def __init__(self):
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.submitted = Counter("docproc_tasks_submitted", "Tasks accepted", ["type"], registry=r)
        self.finished = {
            status: Counter(f"docproc_tasks_{status}", f"Tasks that ended {status}", ["type"], registry=r)
            for status in _FINISHED
        }
        self.wait = Histogram("docproc_task_wait_seconds", "Time from submission to the first start",
                              ["type"], buckets=WAIT_BUCKETS, registry=r)
        self.stage = Histogram("docproc_stage_duration_seconds", "Duration of a task stage that ran to its end",
                               ["type", "stage"], buckets=STAGE_BUCKETS, registry=r)
        self.tokens = Counter("docproc_llm_tokens", "LLM tokens used", ["type", "kind"], registry=r)
        for t in TASK_TYPES:  # every series exists from the start, so rate() sees the first increment
            self.submitted.labels(t)
            for counter in self.finished.values():
                counter.labels(t)
            for kind in ("prompt", "completion"):
                self.tokens.labels(t, kind)
            self.wait.labels(t)
            for stage in STAGES if t == "form_filling" else STAGES[:2]:
                self.stage.labels(t, stage)

    # -- hooks (called from intake, the worker and the events) -------------------------------
    def on_submitted(self, task_type: str, n: int = 1) -> None:
        self.submitted.labels(task_type).inc(n)

    def on_finished(self, row) -> None:
        """TaskEvents hook: count the outcome; the wait of tasks a worker started."""
        counter = self.finished.get(row["status"])
        if counter is not None:
            counter.labels(row["type"]).inc()
        if row["attempts"] and row["started_at"] is not None:  # attempts 0: from the cache, or cancelled in the queue
            self.wait.labels(row["type"]).observe(max(row["started_at"] - row["created_at"], 0.0))

    def on_stage(self, task_type: str, stage: str, seconds: float) -> None:
        self.stage.labels(task_type, stage).observe(seconds)

    def on_usage(self, task_type: str, usage: dict) -> None:
        for kind in ("prompt", "completion"):
            tokens = usage.get(f"{kind}_tokens") or 0
            if tokens > 0:
                self.tokens.labels(task_type, kind).inc(tokens)

    # -- scrape ---------------------------------------------------------------------------
    def watch(self, rt) -> None:
        """Add the gauges read from this runtime when scraped."""
        self.registry.register(_RuntimeCollector(rt))

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition in the format the scraper asked for (text, or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _RuntimeCollector:
    """Queue depth, workers and OCR slots as they are at scrape time; nothing is cached."""

    def __init__(self, rt):
        self.rt = rt

    def describe(self):
        return []  # no values at registration: the runtime may not be started yet

    def collect(self):
        rt = self.rt
        yield GaugeMetricFamily("docproc_queue_depth", "Task ids waiting in the queue", value=rt.queue.depth())
        yield GaugeMetricFamily("docproc_workers_busy", "Workers running a task", value=rt.pool.busy())
        yield GaugeMetricFamily("docproc_workers", "Configured worker threads", value=rt.settings.effective_workers)
        yield GaugeMetricFamily("docproc_workers_alive", "Worker threads alive", value=rt.pool.alive())
        yield GaugeMetricFamily("docproc_ocr_slots_busy", "OCR slots in use", value=rt.ocr_pool.busy)
        yield GaugeMetricFamily("docproc_ocr_pages_waiting", "Pages waiting for an OCR slot",
                                value=rt.ocr_pool.pending_pages())
        yield GaugeMetricFamily("docproc_accepting", "1 while the service takes new tasks", value=int(rt.accepting))
