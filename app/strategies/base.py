"""What a strategy sees of its task: files, options, OCR, the extractor, progress and cancel."""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Callable

from .. import jsonio, ocr
from ..artifacts import TaskArtifacts
from ..ocr_pool import PageAborted
from ..pages import PageRef
from ..pdf import SharedDocument
from ..errors import PermanentError, TaskCancelled, TaskError, TaskLost, TaskTimedOut, TransientError
from ..engine.persist import persist
from ..extract.base import Extraction, LibraryEntry
from ..extract.fields import parse_fields
from ..extract.local import label_key

if TYPE_CHECKING:
    from ..config import Settings
    from ..engine.store import TaskStore
    from ..extract.base import Extractor
    from ..ocr_pool import OcrPool
    from ..storage import FileStore

logger = logging.getLogger(__name__)

OCR_SHARE = 0.8  # progress 0..0.8 is OCR, the rest extraction
PROGRESS_EVERY = 0.1  # s: pages read faster than this (text layers) share one progress write and wake-up
DEADLINE_SLACK = 0.05  # seconds: a request cut at the deadline may return a hair before it


@dataclass
class Services:
    """The long-lived parts every task uses, built once by the runtime."""

    db: "TaskStore"
    store: "FileStore"
    ocr_pool: "OcrPool"
    extractor: "Extractor"
    settings: "Settings"
    clock: Callable[[], float]
    llm_slots: threading.Semaphore | None = None
    on_usage: Callable[[str, dict], None] | None = None  # (task type, usage), for metrics
    on_stage: Callable[[str, str, float], None] | None = None  # (task type, stage, seconds) of a stage that ran to its end
    on_progress: Callable[[str], None] | None = None  # (task id) after progress was written: wakes long-polls


class TaskContext:
    """One attempt at one task; every stage boundary goes through checkpoint()."""

    def __init__(self, row, claim: str, services: Services, input_: dict):
        self.row = row
        self.task_id = row["id"]
        self.tenant = row["tenant"]
        self.type = row["type"]
        self.priority = row["priority"]
        self.claim = claim
        self.deadline = row["deadline"]
        self.files = input_["files"]
        self.options = input_.get("options", {})
        self.s = services
        self.stage = "starting"
        self.pages_read = False  # every page is read and kept: a retry goes straight to extraction
        self._pages: list | None = None
        self._batch = None
        self._aborted = False
        self._checked = 0.0  # monotonic time of the last checkpoint

    # -- boundaries --------------------------------------------------------------------
    def remaining(self) -> float:
        return self.deadline - self.s.clock()

    def _persist(self, call, what: str):
        return persist(call, budget=min(self.s.settings.storage_retry_seconds, max(self.remaining(), 0.0)), what=what)

    def checkpoint(self, stage: str, progress: float) -> None:
        """Record progress and renew the lease; stop here if the task was cancelled, timed out or taken away."""
        self.stage = stage.split(" ")[0]
        self._checked = time.monotonic()
        if self.remaining() <= 0:
            raise TaskTimedOut("task passed its deadline (DOCPROC_TASK_TIMEOUT)", stage=self.stage)
        now = self.s.clock()
        cancel = self._persist(lambda: self.s.db.record_progress(
            self.task_id, self.claim, progress, stage, now, now + self.s.settings.lease_seconds), "progress")
        if cancel is None:
            raise TaskLost(self.task_id)
        if cancel:
            raise TaskCancelled(self.task_id)
        if self.s.on_progress:
            self.s.on_progress(self.task_id)

    def abort(self, *, kill: bool = False) -> None:
        """From another thread (a cancel heard, shutdown): stop this attempt's OCR now."""
        self._aborted = True
        batch = self._batch
        if batch is not None:
            batch.abort(kill=kill)
            batch.results.put((None, None, None))  # wakes the reader, which then reaches its checkpoint

    # -- OCR -----------------------------------------------------------------------------
    def ocr_pages(self) -> list:
        """Every page of every file, read once per task through the shared, fair OCR slots.

        Each page is kept as it is read; a later attempt (a retry, a resume after a crash) reads only
        the pages still missing.
        """
        if self._pages is not None:
            return self._pages
        kept = {i: ocr.PageText.from_dict(p) for i, p in self.s.db.kept_pages(self.task_id).items()}
        lang = self.options.get("lang", "eng")
        loaders = []  # pages.PageRef: each page is decoded in its OCR slot, so a big PDF is not held decoded
        documents = []  # each PDF opened once for all its pages, closed when the reading ends
        artifacts = TaskArtifacts(self.s.settings.artifacts_dir)
        for f in self.files:
            data = self._file(f["sha256"])
            document = SharedDocument(data) if f["media_type"] == "application/pdf" else None
            if document is not None:
                documents.append(document)
            for p in range(f["pages"]):
                # The page's text-only PDF (its searchable PDF layer) is written by the same tesseract run.
                loaders.append(PageRef(data, f["media_type"], p, layer=artifacts.layer(self.task_id, len(loaders)),
                                       document=document, sha256=f["sha256"]))
        total = len(loaders)
        pages = [kept.get(i) for i in range(total)]
        missing = [i for i in range(total) if pages[i] is None]
        if kept:
            logger.info("task %s: reusing the OCR of %d of %d pages from an earlier attempt",
                        self.task_id, total - len(missing), total)
        started = time.monotonic()
        done = total - len(missing)
        self.checkpoint(f"ocr {done}/{total} pages" + (" (reused)" if kept and not missing else ""),
                        OCR_SHARE * done / total)
        try:
            if missing:
                self._read(loaders, missing, pages, lang, done, total)
        finally:
            for document in documents:
                document.close()
        self.pages_read = True
        self._pages = pages
        self._timed("ocr", started)
        return pages

    def _read(self, loaders: list, missing: list[int], pages: list, lang: str, done: int, total: int) -> None:
        batch = self.s.ocr_pool.submit(self.claim, self.priority, [loaders[i] for i in missing], lang,
                                       deadline=self.deadline)
        self._batch = batch
        finished = False
        try:
            for _ in missing:
                try:
                    position, page, exc = batch.next_result(timeout=max(self.remaining(), 0.001))
                except queue.Empty:
                    raise TaskTimedOut("task passed its deadline during OCR", stage="ocr") from None
                if position is None or isinstance(exc, PageAborted):  # woken or stopped by abort(): the checkpoint says why
                    self.checkpoint(f"ocr {done}/{total} pages", OCR_SHARE * done / total)
                    raise TaskLost(self.task_id)
                index = missing[position]
                if exc is not None:
                    if isinstance(exc, TaskError):
                        raise exc
                    raise PermanentError(f"page {index + 1} could not be read: {exc}", stage="ocr") from exc
                pages[index] = page
                if not self._persist(lambda: self.s.db.keep_page(self.task_id, self.claim, index, page.to_dict()),
                                     "keep page"):
                    raise TaskLost(self.task_id)
                done += 1
                if done == total or time.monotonic() - self._checked >= PROGRESS_EVERY:
                    self.checkpoint(f"ocr {done}/{total} pages", OCR_SHARE * done / total)
            finished = True
        finally:
            self._batch = None
            # A cancel, the deadline or a failed page: the task's pages still in tesseract stop now.
            batch.abort(kill=not finished)

    def _file(self, sha256: str) -> bytes:
        try:
            return self.s.store.read(sha256)
        except FileNotFoundError:
            raise PermanentError("the uploaded file is no longer stored (DOCPROC_FILE_RETENTION)", stage="ocr") from None
        except OSError as e:
            raise TransientError(f"the uploaded file cannot be read now: {e}", stage="ocr") from None

    # -- extraction ----------------------------------------------------------------------
    def _ask(self, call, *args) -> Extraction:
        """One extractor call, abandoned at the stage limit (llm_timeout) or the task deadline."""
        slots = self.s.llm_slots
        if slots is not None and not slots.acquire(timeout=max(self.remaining(), 0.0)):
            raise TaskTimedOut("task passed its deadline waiting for an LLM slot", stage=self.stage)
        try:
            limit = min(self.s.settings.llm_timeout, self.remaining())
            if limit <= 0:
                raise TaskTimedOut("task passed its deadline (DOCPROC_TASK_TIMEOUT)", stage=self.stage)
            try:
                return self._account(call(*args, timeout=limit))
            except TransientError as exc:
                # Cut short by the deadline, not by the endpoint: a timeout of the task, not retried.
                if self.remaining() <= DEADLINE_SLACK:
                    raise TaskTimedOut(f"task passed its deadline during {self.stage} ({exc.message})",
                                       stage=self.stage) from None
                raise
        finally:
            if slots is not None:
                slots.release()

    def _account(self, extraction: Extraction) -> Extraction:
        if extraction.usage and self.s.on_usage:
            self.s.on_usage(self.type, extraction.usage)
        return extraction

    def _timed(self, stage: str, started: float) -> None:
        if self.s.on_stage:
            self.s.on_stage(self.type, stage, time.monotonic() - started)

    def extract(self, kind: str, pages: list) -> Extraction:
        started = time.monotonic()
        self.checkpoint("extract", OCR_SHARE)
        fields = parse_fields(self.options["fields"]) if self.options.get("fields") else None
        extraction = self._ask(partial(self.s.extractor.extract, fields=fields), kind, pages)
        self._timed("extract", started)
        return extraction

    def fill(self, fields: list[str], form_text: str, library: list[LibraryEntry]) -> Extraction:
        started = time.monotonic()
        self.checkpoint("fill", 0.9)
        extraction = self._ask(self.s.extractor.fill, fields, form_text, library)
        self._timed("fill", started)
        return extraction

    def library(self) -> list[LibraryEntry]:
        """The form-filling sources named in options.library, read under this task's tenant."""
        refs = self.options.get("library", [])
        ids = [r for r in refs if isinstance(r, str)]
        rows = self.s.db.completed_results(ids, self.tenant)
        entries = []
        for n, ref in enumerate(refs):
            if isinstance(ref, str):
                row = rows.get(ref)
                if row is None or row["status"] != "completed":
                    raise PermanentError(f"library task {ref} is not a completed task", stage="fill")
                kv = jsonio.loads(row["result"]).get("kv", {})
                entries.append(LibraryEntry(kv=kv, source_type=row["type"], source_id=ref))
            else:
                entries.append(LibraryEntry(kv=ref["kv"], source_type="inline", source_id=f"inline-{n}"))
        return entries


def page_summary(pages, options: dict | None = None) -> tuple[str, list[dict]]:
    """The joined text and the per-page records every result carries (words with option `words`)."""
    words = bool((options or {}).get("words"))
    records = [p.record(i + 1, words=words) for i, p in enumerate(pages)]
    return "\n\n".join(p.text for p in pages), records


def ocr_and_extract(ctx: TaskContext, kind: str) -> dict:
    """The shared run of `document` and `form`: OCR, then one extraction of this kind."""
    pages = ctx.ocr_pages()
    text, records = page_summary(pages, ctx.options)
    extraction = ctx.extract(kind, pages)
    data = with_form_values(extraction.data, pages)
    return {**data, "text": text, "pages": records, "extractor": extraction.extractor,
            **({"usage": extraction.usage} if extraction.usage else {})}


def with_form_values(data: dict, pages) -> dict:
    """The extraction with the values of filled PDF form fields in kv, exactly as the form holds them.

    They are facts of the file, not guesses: they replace what an extractor read for the same key,
    keyed as the extractor keys a printed label of that name, with their page and box as provenance.
    """
    filled = [(n, f) for n, page in enumerate(pages, 1) for f in page.form_fields if f["value"]]
    if not filled:
        return data
    kv, provenance = dict(data.get("kv") or {}), dict(data.get("provenance") or {})
    for number, field in filled:
        key = label_key(field["name"])
        kv[key] = field["value"]
        provenance[key] = {"page": number, "box": field["box"]}
    return {**data, "kv": kv, "provenance": provenance}
