"""A completed task's pages as documents: the searchable PDF and page previews (same tenant rules as the task)."""
from __future__ import annotations

from flask import Blueprint, Response, request

from ..documents import MAX_PREVIEW_WIDTH, MIN_PREVIEW_WIDTH, PREVIEW_WIDTH
from ..errors import BadInput
from . import runtime
from .tasks import load_task

bp = Blueprint("documents", __name__, url_prefix="/api")


@bp.get("/tasks/<task_id>/pdf")
def searchable_pdf(task_id: str):
    """The document as a PDF with an invisible text layer over each page image (or the original, born-digital)."""
    row = load_task(task_id)
    data = runtime().documents.searchable_pdf(row)
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{task_id}.pdf"', "Cache-Control": "private, max-age=3600"})


@bp.get("/tasks/<task_id>/pages/<number>")
def page_preview(task_id: str, number: str):
    """Page `number` (1-based) as PNG: the image the OCR read, scaled to ?width= pixels."""
    row = load_task(task_id)
    if not number.isascii() or not number.isdigit() or len(number) > 6:
        raise BadInput(404, "page_not_found", "pages are numbered from 1")
    raw = request.args.get("width", str(PREVIEW_WIDTH))
    if not raw.isascii() or not raw.isdigit() or not MIN_PREVIEW_WIDTH <= int(raw) <= MAX_PREVIEW_WIDTH:
        raise BadInput(400, "invalid_width", f"width must be an integer from {MIN_PREVIEW_WIDTH} to {MAX_PREVIEW_WIDTH}")
    data = runtime().documents.preview(row, int(number), int(raw))
    return Response(data, mimetype="image/png", headers={"Cache-Control": "private, max-age=3600"})
