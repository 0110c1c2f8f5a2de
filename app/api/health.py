"""Health and statistics."""
from __future__ import annotations

from flask import Blueprint, jsonify

from ..auth import current_tenant
from ..models import iso
from . import runtime

bp = Blueprint("health", __name__, url_prefix="/api")

FAULT_MEMORY = 60.0  # seconds a storage fault keeps health degraded when nothing has written since


@bp.get("/health")
def health():
    rt = runtime()
    alive = rt.pool.alive()
    expected = rt.pool.expected()  # distributed: the worker threads of the worker processes seen lately
    try:
        version = rt.ocr_engine.version()
    except Exception:  # reported, not raised: health must answer even when tesseract is gone
        version = None
    fault = rt.db.fault  # the last storage fault, until a write succeeds or it is FAULT_MEMORY old
    if fault is not None and rt.clock() - fault["at"] > FAULT_MEMORY:
        fault = None
    ok = alive == expected and version is not None and rt.accepting and fault is None
    body = {
        "status": "ok" if ok else "degraded",
        "accepting": rt.accepting,
        "workers": {"alive": alive, "expected": expected},
        "queue_depth": rt.queue.depth(),
        "tesseract": version,
        "extractor": rt.extractor.name,
        "storage": {"ok": True} if fault is None else {"ok": False, "error": fault["error"], "since": iso(fault["at"])},
    }
    return jsonify(body), (200 if ok else 503)


@bp.get("/stats")
def stats():
    rt = runtime()
    s = rt.db.stats(current_tenant())
    busy, total = rt.pool.busy(), rt.pool.expected()
    return jsonify({
        "tasks": s["counts"],
        "workers": {"total": total, "busy": busy, "idle": max(total - busy, 0)},
        "ocr": {"slots": rt.ocr_pool.concurrency, "busy": rt.ocr_pool.busy, "pages_waiting": rt.ocr_pool.pending_pages()},
        "queue_depth": rt.queue.depth(),
        "mean_wait_seconds": s["mean_wait_seconds"],
        "mean_run_seconds": s["mean_run_seconds"],
        "uptime_seconds": round(rt.clock() - rt.started_at, 1),
    })
