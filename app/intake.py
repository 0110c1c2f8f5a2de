"""Turning a request into stored files plus task rows, or a clear client error."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from . import jsonio, multipart, pages
from .engine.store import NewTask
from .errors import BadInput, excerpt
from .extract.fields import parse_fields
from .models import TASK_TYPES, is_uuid
from .strategies import allowed_options, required_options
from .webhooks import check_callback_url

logger = logging.getLogger(__name__)

RESULT_VERSION = 3  # bump when a strategy's result changes, so the cache does not serve old shapes
_NOT_HASHED = ("no_cache", "callback_url")


@dataclass
class Upload:
    data: bytes
    name: str


@dataclass
class Submission:
    """A parsed request, before any file is stored."""

    type: str
    priority: int
    options: dict
    uploads: list[Upload] = field(default_factory=list)


# -- parsing ---------------------------------------------------------------------------
def parse_request(request, fixed_type: str | None = None, *, max_files: int) -> Submission:
    """Read type, priority, options and files from multipart/form-data or JSON."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        try:
            body = jsonio.loads_request(_read_body(request))
        except ValueError as exc:
            raise BadInput(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadInput(400, "invalid_json", "the body is not a JSON object")
        uploads = _decode_images(body.get("images"))
        return Submission(
            type=_parse_type(fixed_type or body.get("type")),
            priority=_parse_priority(body.get("priority", 5)),
            options=_parse_options(body.get("options", {})),
            uploads=uploads,
        )
    if mimetype == "multipart/form-data":
        boundary = request.mimetype_params.get("boundary")
        if not boundary:
            raise BadInput(400, "malformed_multipart", "multipart/form-data without a boundary")
        form = multipart.parse(_read_body(request), boundary, max_files=max_files)
        priority = form.text("priority")
        raw_options = form.fields.get("options")
        if raw_options is None:
            options = {}
        else:
            try:
                options = jsonio.loads_request(raw_options)
            except ValueError as exc:
                raise BadInput(400, "invalid_options", f"options is not valid JSON: {exc}") from None
        return Submission(
            type=_parse_type(fixed_type or form.text("type")),
            priority=_parse_priority(5 if priority is None else priority),
            options=_parse_options(options),
            uploads=[Upload(data, _display_name(name)) for name, data in form.files],
        )
    raise BadInput(415, "unsupported_content_type", "send multipart/form-data or application/json")


def _read_body(request) -> bytes:
    """The whole body; werkzeug's stream raises 413 past MAX_CONTENT_LENGTH (read() alone would cut silently)."""
    chunks = []
    while chunk := request.stream.read(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_type(value) -> str:
    if value in (None, ""):
        raise BadInput(400, "missing_field", "the field 'type' is required")
    if value not in TASK_TYPES:
        raise BadInput(400, "unknown_type", f"unknown task type {excerpt(value)}; use one of {', '.join(TASK_TYPES)}")
    return value


def _parse_priority(value) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        priority = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,3}\s*", value):  # not isdigit(): '²' is a digit
        priority = int(value)
    else:
        priority = -1
    if not 0 <= priority <= 9:
        raise BadInput(400, "invalid_priority", "priority must be an integer from 0 to 9")
    return priority


def _parse_options(value) -> dict:
    if not isinstance(value, dict):
        raise BadInput(400, "invalid_options", "options must be a JSON object")
    return value


def _decode_images(images) -> list[Upload]:
    if images is None:
        return []
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise BadInput(400, "invalid_images", "images must be a list of base64 strings")
    uploads = []
    for n, text in enumerate(images):
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput(400, "invalid_base64", f"images[{n}] is not valid base64") from None
        uploads.append(Upload(data, f"image-{n + 1}"))
    return uploads


def _display_name(filename: str | None) -> str:
    """A label for people only: no directories, no control characters; never used as a path."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:120]
    return name or "upload"


# -- checking ----------------------------------------------------------------------------
def check_options(sub: Submission, *, languages, tenant: str, db, settings) -> None:
    """Options must be known for the type and valid; library ids must be this tenant's."""
    allowed = allowed_options(sub.type)
    for key in sub.options:
        if key not in allowed:
            raise BadInput(400, "unknown_option", f"unknown option {excerpt(key)} for type {sub.type}; known: {', '.join(sorted(allowed))}")
    for key in required_options(sub.type):
        if key not in sub.options:
            raise BadInput(400, "missing_option", f"options.{key} is required for type {sub.type}")
    opts = sub.options
    if "lang" in opts:
        lang = opts["lang"]
        if not isinstance(lang, str) or not lang or any(part not in languages for part in lang.split("+")):
            raise BadInput(400, "unsupported_language",
                           f"language {excerpt(lang)} is not installed; available: {', '.join(sorted(languages))}")
    for flag in ("no_cache", "words"):
        if flag in opts and not isinstance(opts[flag], bool):
            raise BadInput(400, "invalid_options", f"options.{flag} must be true or false")
    if "callback_url" in opts:
        check_callback_url(opts["callback_url"], allow_private=settings.allow_private_callbacks)
    if "library" in opts:
        _check_library(opts["library"], tenant, db)
    if "fields" in opts:
        try:
            parse_fields(opts["fields"])
        except ValueError as e:
            raise BadInput(400, "invalid_fields", str(e)) from None


def _check_library(library, tenant: str, db) -> None:
    if not isinstance(library, list) or not library:
        raise BadInput(400, "invalid_library", "options.library must be a non-empty list")
    ids = []
    for n, ref in enumerate(library):
        if isinstance(ref, str):
            if not is_uuid(ref):
                raise BadInput(400, "unknown_library_task", f"library[{n}] is not a task id")
            ids.append(ref)
        elif isinstance(ref, dict) and set(ref) == {"kv"} and isinstance(ref["kv"], dict) and all(
            isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool) for k, v in ref["kv"].items()
        ):
            continue
        else:
            raise BadInput(400, "invalid_library", f"library[{n}] must be a task id or {{\"kv\": {{name: value}}}}")
    found = db.completed_results(ids, tenant)
    for task_id in ids:
        row = found.get(task_id)
        if row is None:
            raise BadInput(400, "unknown_library_task", f"library task {task_id} does not exist")
        if row["status"] != "completed" or row["type"] not in ("document", "form"):
            raise BadInput(400, "library_task_not_usable", f"library task {task_id} is not a completed document or form task")


class InspectionCache:
    """Inspection results by tenant and file hash: the same bytes under the same limits inspect the same.

    A client that resubmits a file (a retry, a cache hit) then skips decoding it again; bounded LRU.
    Per tenant, so that how fast a file is accepted never tells whether another tenant sent it.
    """

    def __init__(self, size: int = 1024):
        self._size = size
        self._results: OrderedDict[tuple[str, str], pages.UploadInfo] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tenant: str, sha256: str) -> pages.UploadInfo | None:
        with self._lock:
            info = self._results.get((tenant, sha256))
            if info is not None:
                self._results.move_to_end((tenant, sha256))
            return info

    def put(self, tenant: str, sha256: str, info: pages.UploadInfo) -> None:
        with self._lock:
            self._results[(tenant, sha256)] = info
            if len(self._results) > self._size:
                self._results.popitem(last=False)


def inspect_uploads(uploads: list[Upload], hashes: list[str], settings, *, tenant: str,
                    cache: InspectionCache, decoded=None) -> list[dict]:
    """Validate every file (type, pixels, pages); the file records the task input keeps.

    decoded (handoff.DecodedPages, embedded process only) keeps the frames decoded here for OCR.
    """
    records = []
    for up, sha256 in zip(uploads, hashes):
        info = cache.get(tenant, sha256)
        if info is None:
            info = pages.inspect_upload(up.data, max_pixels=settings.max_pixels, max_pages=settings.max_pages,
                                        pdf_dpi=settings.pdf_dpi,
                                        keep=decoded.keeper(sha256) if decoded is not None else None)
            cache.put(tenant, sha256, info)
        records.append({"name": up.name, "media_type": info.media_type, "pages": info.pages, "size": len(up.data)})
    return records


def content_hash(task_type: str, file_hashes: list[str], options: dict, extractor_name: str) -> str:
    """What makes two tasks the same work: files, type, options that matter, extractor."""
    key = {
        "v": RESULT_VERSION,
        "type": task_type,
        "files": file_hashes,
        "options": {k: v for k, v in options.items() if k not in _NOT_HASHED},
        "extractor": extractor_name,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


# -- storing -----------------------------------------------------------------------------
def submit(sub: Submission, *, tenant: str, rt, batch: bool = False) -> tuple[list, str | None]:
    """Store files and rows for a checked submission; returns (task rows as stored, batch id)."""
    settings, db, store = rt.settings, rt.db, rt.store
    check_options(sub, languages=rt.ocr_engine.languages(), tenant=tenant, db=db, settings=settings)
    max_files = settings.max_batch_files if batch else settings.max_files
    if not sub.uploads:
        raise BadInput(400, "no_file", "at least one file is required")
    if len(sub.uploads) > max_files:
        raise BadInput(413, "too_many_files", f"at most {max_files} files per request")
    hashes = [store.digest(u.data) for u in sub.uploads]
    decoded = rt.decoded
    try:
        records = inspect_uploads(sub.uploads, hashes, settings, tenant=tenant, cache=rt.inspections,
                                  decoded=decoded)
        rows, batch_id, tasks = _store(sub, records, hashes, tenant=tenant, rt=rt, batch=batch)
    except BaseException:
        for sha256 in hashes if decoded is not None else ():
            decoded.discard(sha256)  # nothing will read these pages
        raise
    if decoded is not None:
        read = {f["sha256"] for t in tasks if t.cached_result is None for f in t.input["files"]}
        for sha256 in set(hashes) - read:
            decoded.discard(sha256)  # answered from the cache: no OCR will take these pages
    for t in tasks:
        if t.cached_result is None:
            rt.dispatcher.dispatch(t.id, t.priority)
        logger.info("task %s submitted: type=%s files=%d priority=%d%s", t.id, t.type, len(t.input["files"]),
                    t.priority, " (from cache)" if t.cached_result is not None else "")
    if rt.metrics is not None:
        rt.metrics.on_submitted(sub.type, len(tasks))
    for t, row in zip(tasks, rows):
        if t.cached_result is not None:
            rt.lifecycle.announce(row)  # born completed: the same hooks as any ending
    return rows, batch_id


def _store(sub: Submission, records: list[dict], hashes: list[str], *, tenant: str, rt, batch: bool):
    """The task rows (and the batch) of a checked submission, with its files, in one transaction."""
    settings, db, store = rt.settings, rt.db, rt.store
    if not batch and sum(r["pages"] for r in records) > settings.max_pages:
        raise BadInput(413, "too_many_pages", f"at most {settings.max_pages} pages per task")
    groups = [[i] for i in range(len(records))] if batch else [list(range(len(records)))]
    batch_id = str(uuid.uuid4()) if batch else None
    tasks = []
    for group in groups:
        file_hashes = [hashes[i] for i in group]
        chash = content_hash(sub.type, file_hashes, sub.options, rt.extractor.name)
        cached = None if sub.options.get("no_cache") else db.cached_result(tenant, chash)
        if cached is not None:
            cached = {**cached, "cached": True}
        files = [{**records[i], "sha256": hashes[i]} for i in group]
        tasks.append(NewTask(
            id=str(uuid.uuid4()), tenant=tenant, type=sub.type, priority=sub.priority,
            input={"files": files, "options": sub.options}, content_hash=chash, batch_id=batch_id, cached_result=cached,
        ))
    # Only tasks that will wait count against the pending caps: one answered from the cache adds no work.
    queued = sum(t.cached_result is None for t in tasks)
    limits = admission_limits(settings)
    if queued:
        _admit(db.pending_counts(tenant), queued, limits)  # cheap early answer, before any file is written
    now = rt.clock()
    with store.staged([u.data for u in sub.uploads], db.file_is_referenced, hashes=hashes):
        # The exact check runs again in the insert itself, so racing requests cannot overshoot.
        # The rows as inserted (before queueing): the answer shows the task as submitted.
        rows = db.create_tasks(tasks, now, batch={"id": batch_id, "tenant": tenant, "type": sub.type} if batch else None,
                               limits=(*limits, queued) if queued else None)
        if rows is None:  # a racing request took the last places: say which cap, as the early check would
            _admit(db.pending_counts(tenant), queued, limits)
            raise BadInput(503, "overloaded", "too many tasks are waiting; try again later", {"Retry-After": "5"})
    return rows, batch_id, tasks


def admission_limits(settings) -> tuple[int, int]:
    return settings.max_pending, settings.effective_max_pending_per_tenant


def _admit(counts: tuple[int, int], adding: int, limits: tuple[int, int]) -> None:
    """Refuse work beyond the pending caps: 503 for the whole service, 429 for one tenant."""
    total, mine = counts
    max_total, max_mine = limits
    if total + adding > max_total:
        raise BadInput(503, "overloaded", f"{total} tasks are waiting; try again later", {"Retry-After": "5"})
    if mine + adding > max_mine:
        raise BadInput(429, "too_many_pending", f"this client has {mine} unfinished tasks; try again later",
                       {"Retry-After": "5"})
