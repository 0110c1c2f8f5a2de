"""Tasks: submit, read (with long-poll), list, cancel."""
from __future__ import annotations

import logging
import re

from flask import Blueprint, jsonify, request

from .. import intake
from ..auth import current_tenant
from ..errors import BadInput
from ..models import TASK_TYPES, TaskStatus, is_uuid, task_to_dict
from ..http_server import DISCONNECTED
from ..webhooks import callback_url, delivery_log
from . import runtime, waiters

logger = logging.getLogger(__name__)
bp = Blueprint("tasks", __name__, url_prefix="/api")

MAX_WAIT = 60.0
_DIGITS = re.compile(r"[0-9]{1,18}")  # str.isdigit() takes '²', which int() refuses; 19+ digits overflow SQLite


def not_found():
    return BadInput(404, "not_found", "no such task")


def load_task(task_id: str):
    """This tenant's task, or the same 404 as an unknown id (so ids of others stay invisible)."""
    if not is_uuid(task_id):
        raise not_found()
    row = runtime().db.get_task(task_id, current_tenant())
    if row is None:
        raise not_found()
    return row


def _submit(fixed_type: str | None):
    rt = runtime()
    if not rt.accepting:
        raise BadInput(503, "shutting_down", "the service is shutting down", {"Retry-After": "10"})
    sub = intake.parse_request(request, fixed_type, max_files=rt.settings.max_files)
    (row,), _ = intake.submit(sub, tenant=current_tenant(), rt=rt)
    response = jsonify(task_to_dict(row))
    response.status_code = 202
    response.headers["Location"] = f"/api/tasks/{row['id']}"
    return response


@bp.post("/tasks")
def create_task():
    return _submit(None)


def _fixed(task_type: str):
    def view():
        return _submit(task_type)
    view.__name__ = f"process_{task_type}"
    return view


for _type in TASK_TYPES:
    bp.add_url_rule(f"/process_{_type}", view_func=_fixed(_type), methods=["POST"])


def _wait_seconds() -> float:
    raw = request.args.get("wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise BadInput(400, "invalid_wait", "wait must be a number of seconds") from None
    if not 0 <= wait <= MAX_WAIT:
        raise BadInput(400, "invalid_wait", f"wait must be between 0 and {MAX_WAIT:g} seconds")
    return wait


def moved(version: int, seen: int) -> int | None:
    """A waiter's answer: the new version, or None while it is still the one seen."""
    return None if version == seen else version


@bp.get("/tasks/<task_id>")
@bp.get("/task_status/<task_id>")
def get_task(task_id: str):
    """The task; with ?wait=N, answer as soon as it changes or finishes, or after N seconds."""
    wait = _wait_seconds()
    rt = runtime()
    version = rt.events.version(task_id)
    row = load_task(task_id)
    if wait and not TaskStatus(row["status"]).is_terminal:
        slot = waiters().acquire(current_tenant(), "too_many_long_polls", "long-polls")
        try:
            slot.wait(lambda seconds: moved(rt.events.wait(task_id, version, seconds), version), wait,
                      request.environ.get(DISCONNECTED))
        finally:
            slot.release()
        row = load_task(task_id)
    body = task_to_dict(row)
    if callback_url(row):
        body["webhooks"] = delivery_log(rt.db, task_id)
    return jsonify(body)


@bp.get("/tasks")
def list_tasks():
    status = request.args.get("status") or None
    type_ = request.args.get("type") or None
    if status and status not in {s.value for s in TaskStatus}:
        raise BadInput(400, "invalid_status", f"unknown status {status!r}")
    if type_ and type_ not in TASK_TYPES:
        raise BadInput(400, "unknown_type", f"unknown task type {type_!r}")
    raw_limit = request.args.get("limit", "50")
    if not _DIGITS.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= 500:
        raise BadInput(400, "invalid_limit", "limit must be an integer from 1 to 500")
    cursor = request.args.get("cursor")
    if cursor is not None and not _DIGITS.fullmatch(cursor):
        raise BadInput(400, "invalid_cursor", "cursor must be a value returned as 'next'")
    rows, last = runtime().db.list_tasks(current_tenant(), status=status, type_=type_, limit=int(raw_limit),
                                         before_rowid=int(cursor) if cursor else None)
    return jsonify({"tasks": [task_to_dict(r) for r in rows], "next": str(last) if last is not None else None})


@bp.delete("/tasks/<task_id>")
def cancel_task(task_id: str):
    """Pending: cancelled now (200). Processing: stops at its next stage boundary (202). Finished: 409."""
    load_task(task_id)
    rt = runtime()
    outcome, row = rt.lifecycle.cancel(task_id, current_tenant())
    if outcome == "finished":
        raise BadInput(409, "task_finished", f"the task is already {row['status']}")
    if outcome == "missing":
        raise not_found()
    return jsonify(task_to_dict(row)), (200 if outcome == "cancelled" else 202)
