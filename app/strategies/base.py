"""What a strategy sees of its task: files, options, OCR, the extractor, progress and cancel."""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

from .. import ocr
from ..artifacts import TaskArtifacts
from ..ocr_pool import PageAborted
from ..pages import PageRef
from ..errors import PermanentError, TaskCancelled, TaskError, TaskLost, TaskTimedOut, TransientError
from ..extract.base import Extraction, LibraryEntry
from ..extract.local import label_key

logger = logging.getLogger(__name__)

OCR_SHARE = 0.8  # progress 0..0.8 is OCR, the rest extraction
DEADLINE_SLACK = 0.05  # seconds: a request cut at the deadline may return a hair before it
CANCEL_POLL = 0.5  # seconds: while pages are in tesseract, a cancel is looked for this often


@dataclass
class Services:
    """The long-lived parts every task uses, built once by the pool's owner."""

    db: object
    store: object
    ocr_pool: object
    extractor: object
    settings: object
    clock: object
    llm_slots: threading.Semaphore | None = None
    on_usage: object = None  # callback(task_type, usage dict), for metrics
    on_stage: object = None  # callback(task_type, stage, seconds) when a stage ran to its end, for metrics
    on_progress: object = None  # callback(task_id) after progress was written: wakes long-polls and event streams


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

    # -- boundaries --------------------------------------------------------------------
    def remaining(self) -> float:
        return self.deadline - self.s.clock()

    def checkpoint(self, stage: str, progress: float, *, ocr_page: tuple[int, dict] | None = None) -> None:
        """Record progress; stop here if the task was cancelled, timed out or taken away."""
        self.stage = stage.split(" ")[0]
        if self.remaining() <= 0:
            raise TaskTimedOut("task passed its deadline (DOCPROC_TASK_TIMEOUT)", stage=self.stage)
        cancel = self.s.db.record_progress(self.task_id, self.claim, progress, stage, self.s.clock(), ocr_page)
        if cancel is None:
            raise TaskLost(self.task_id)
        if cancel:
            raise TaskCancelled(self.task_id)
        if self.s.on_progress:
            self.s.on_progress(self.task_id)

    # -- OCR -----------------------------------------------------------------------------
    def ocr_pages(self) -> list:
        """OCR every page of every file through the shared, fair OCR slots; each page is kept as it is read,
        so another attempt (a retry, a resume after a crash) reads only the pages still missing."""
        refs = []
        artifacts = TaskArtifacts(self.s.settings.artifacts_dir)
        for f in self.files:
            data = self._file(f["sha256"])
            refs += [PageRef(data, f["media_type"], p, layer=artifacts.layer(self.task_id, len(refs) + p))
                     for p in range(f["pages"])]
        total = len(refs)
        stored = json.loads(self.row["ocr_pages"]) if self.row["ocr_pages"] else {}
        if isinstance(stored, list):  # kept whole by an earlier version
            stored = dict(enumerate(stored))
        pages = [None] * total
        for key, value in stored.items():
            if 0 <= int(key) < total:
                pages[int(key)] = ocr.PageText.from_dict(value)
        todo = [i for i, page in enumerate(pages) if page is None]
        if not todo:
            logger.info("task %s: reusing the OCR of %d pages from an earlier attempt", self.task_id, total)
            self.checkpoint(f"ocr {total}/{total} pages (reused)", OCR_SHARE)
            return pages
        if len(todo) < total:
            logger.info("task %s: reusing the OCR of %d of %d pages from an earlier attempt", self.task_id,
                        total - len(todo), total)
        lang = self.options.get("lang", "eng")
        started = time.monotonic()
        done = total - len(todo)
        self.checkpoint(f"ocr {done}/{total} pages", OCR_SHARE * done / total)
        batch = self.s.ocr_pool.submit(self.claim, self.priority, [refs[i] for i in todo], lang, deadline=self.deadline)
        finished = False
        try:
            received = 0
            while received < len(todo):
                try:
                    position, page, exc = batch.next_result(timeout=min(max(self.remaining(), 0.001), CANCEL_POLL))
                except queue.Empty:
                    if self.remaining() <= 0:
                        raise TaskTimedOut("task passed its deadline during OCR", stage="ocr") from None
                    if self.s.db.cancel_requested(self.task_id):
                        raise TaskCancelled(self.task_id) from None  # its tesseracts are killed below
                    continue
                received += 1
                index = todo[position]
                if isinstance(exc, PageAborted):
                    # Stopped from outside (shutdown, a cancel): say why, and write no outcome of our own.
                    self.checkpoint(f"ocr {done}/{total} pages", OCR_SHARE * done / total)
                    raise TaskLost(self.task_id)
                if exc is not None:
                    if isinstance(exc, TaskError):
                        raise exc
                    raise PermanentError(f"page {index + 1} could not be read: {exc}", stage="ocr") from exc
                pages[index] = page
                done += 1
                self.checkpoint(f"ocr {done}/{total} pages", OCR_SHARE * done / total,
                                ocr_page=(index, page.to_dict()))
            finished = True
        finally:
            # A cancel, the deadline or a failed page: the task's pages still in tesseract stop now.
            batch.abort(kill=not finished)
        self._timed("ocr", started)
        return pages

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

    def extract(self, kind: str, texts: list[str]) -> Extraction:
        started = time.monotonic()
        self.checkpoint("extract", OCR_SHARE)
        extraction = self._ask(self.s.extractor.extract, kind, texts)
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
                kv = json.loads(row["result"]).get("kv", {})
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
    extraction = ctx.extract(kind, [p.text for p in pages])
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
