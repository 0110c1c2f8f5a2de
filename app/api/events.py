"""GET /api/tasks/<id>/events: a task's status and progress as server-sent events until it ends."""
from __future__ import annotations

import json
import logging
import time

from flask import Blueprint, Response, request

from ..auth import current_tenant
from ..models import TaskStatus, task_to_dict
from ..http_server import DISCONNECTED
from . import runtime, waiters
from .tasks import load_task, moved

logger = logging.getLogger(__name__)

bp = Blueprint("events", __name__, url_prefix="/api")

RETRY_MS = 3000


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
    slot = waiters().acquire(tenant, "too_many_streams", "event streams")
    left = request.environ.get(DISCONNECTED)

    def stream():
        nonlocal seen
        try:
            task = task_to_dict(row)
            yield f"retry: {RETRY_MS}\n" + _event("task", task)
            end = time.monotonic() + rt.settings.sse_max_seconds
            reason = "finished"
            while not TaskStatus(task["status"]).is_terminal:
                remaining = end - time.monotonic()
                if remaining <= 0 or not rt.accepting:
                    reason = "timeout" if rt.accepting else "shutdown"
                    break
                version, why = slot.wait(lambda seconds: moved(rt.events.wait(task_id, seen, seconds), seen),
                                         min(rt.settings.sse_keepalive, remaining), left)
                if why in ("shutdown", "left"):
                    reason = why
                    break
                if why == "timeout":
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
            if reason != "left":
                yield _event("end", {"id": task_id, "status": task["status"], "reason": reason})
        finally:
            slot.release()  # at once, also when the client left mid-stream

    response = Response(stream(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(slot.release)  # a stream that never started
    return response
