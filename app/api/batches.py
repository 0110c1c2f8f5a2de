"""Batches: many files in one request, one task each."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .. import exports, intake
from ..auth import current_tenant
from ..errors import BadInput
from ..models import TERMINAL, TaskStatus, is_uuid, iso, task_to_dict
from . import runtime

bp = Blueprint("batches", __name__, url_prefix="/api")


@bp.post("/batches")
def create_batch():
    rt = runtime()
    if not rt.accepting:
        raise BadInput(503, "shutting_down", "the service is shutting down", {"Retry-After": "10"})
    sub = intake.parse_request(request, max_files=rt.settings.max_batch_files)
    rows, batch_id = intake.submit(sub, tenant=current_tenant(), rt=rt, batch=True)
    task_ids = [r["id"] for r in rows]
    response = jsonify({"id": batch_id, "type": sub.type, "task_ids": task_ids})
    response.status_code = 202
    response.headers["Location"] = f"/api/batches/{batch_id}"
    return response


def _load_batch(batch_id: str):
    """The batch row and its tasks, or 404 (another tenant's batch answers like an unknown one)."""
    if not is_uuid(batch_id):
        raise BadInput(404, "not_found", "no such batch")
    batch, rows = runtime().db.batch_tasks(batch_id, current_tenant())
    if batch is None:
        raise BadInput(404, "not_found", "no such batch")
    return batch, rows


@bp.get("/batches/<batch_id>")
def get_batch(batch_id: str):
    batch, rows = _load_batch(batch_id)
    counts = {s.value: 0 for s in TaskStatus}
    for r in rows:
        counts[r["status"]] += 1
    finished = sum(counts[s.value] for s in TERMINAL)
    return jsonify({
        "id": batch_id,
        "type": batch["type"],
        "created_at": iso(batch["created_at"]),
        "total": len(rows),
        "counts": counts,
        "done": finished == len(rows),
        "progress": round(sum(r["progress"] for r in rows) / len(rows), 4) if rows else 1.0,
        "tasks": [task_to_dict(r) for r in rows],
    })


@bp.get("/batches/<batch_id>/export")
def export_batch(batch_id: str):
    """One row per task: id, file, status, error, the canonical keys and the requested fields (CSV or JSONL)."""
    fmt = request.args.get("format", "csv")
    if fmt not in exports.FORMATS:
        raise BadInput(400, "invalid_format", f"format must be one of {', '.join(exports.FORMATS)}")
    _, rows = _load_batch(batch_id)
    return Response(exports.export(rows, fmt), content_type=exports.FORMATS[fmt], headers={
        "Content-Disposition": f'attachment; filename="batch-{batch_id}.{fmt}"', "Cache-Control": "no-store"})
