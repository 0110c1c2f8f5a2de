"""GET /api/tasks/<id>/events: a task's status and progress as server-sent events until it ends."""
from __future__ import annotations

import json
import logging
import threading
import time

from flask import Blueprint, Response, current_app

from ..auth import current_tenant
from ..errors import BadInput
from ..models import TaskStatus, task_to_dict
from . import runtime
from .tasks import load_task

logger = logging.getLogger(__name__)

bp = Blueprint("events", __name__, url_prefix="/api")

RETRY_MS = 3000


def _slots(app) -> threading.BoundedSemaphore:
    # Each open stream holds one of the HTTP server's Python threads: cap them so polling clients still get answers.
    slots = app.extensions.get("docproc_sse_slots")
    if slots is None:
        limit = max(1, app.extensions["docproc"].settings.http_threads // 2)
        slots = app.extensions.setdefault("docproc_sse_slots", threading.BoundedSemaphore(limit))
    return slots


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _changed(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k != "updated_at"} != {k: v for k, v in b.items() if k != "updated_at"}


@bp.get("/tasks/<task_id>/events")
def task_events(task_id: str):
    rt = runtime()
    tenant = current_tenant()
    seen = rt.events.version(task_id)  # read before the row, so no change between the two is missed
    row = load_task(task_id)
    slots = _slots(current_app)
    if not slots.acquire(blocking=False):
        raise BadInput(503, "too_many_streams", "too many event streams are open; poll instead", {"Retry-After": "5"})

    def stream():
        nonlocal seen
        task = task_to_dict(row)
        yield f"retry: {RETRY_MS}\n" + _event("task", task)
        end = time.monotonic() + rt.settings.sse_max_seconds
        reason = "finished"
        while not TaskStatus(task["status"]).is_terminal:
            left = end - time.monotonic()
            if left <= 0 or not rt.accepting:
                reason = "timeout" if rt.accepting else "shutdown"
                break
            version = rt.events.wait(task_id, seen, min(rt.settings.sse_keepalive, left))
            if version == seen:
                yield ": keep-alive\n\n"
                continue
            seen = version
            fresh = rt.db.get_task(task_id, tenant)
            if fresh is None:  # deleted by retention while watched
                reason = "gone"
                break
            new = task_to_dict(fresh)
            if _changed(task, new):
                task = new
                yield _event("task", task)
        yield _event("end", {"id": task_id, "status": task["status"], "reason": reason})

    response = Response(stream(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    # The server closes every response, also when the client went away mid-stream or never read it.
    response.call_on_close(slots.release)
    return response
