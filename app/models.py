"""The task's status set and its public JSON shape."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum
from functools import lru_cache

from . import jsonio

UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # task and batch ids, lower case
_UUID = re.compile(UUID_PATTERN)


def is_uuid(value) -> bool:
    """Whether value is an id as the service writes them (anything else can name no task)."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


class TaskStatus(str, Enum):
    """Every status a task can have; schema.sql mirrors this set in a CHECK."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
TASK_TYPES = ("document", "form", "form_filling")


@lru_cache(maxsize=4096)  # a task's times often repeat (a cached task's four are one), and reads repeat
def iso(ts: float | None) -> str | None:
    """Unix seconds to an ISO 8601 UTC string with milliseconds."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_to_dict(row) -> dict:
    """The task object every endpoint returns."""
    return {
        "id": row["id"],
        "type": row["type"],
        "status": row["status"],
        "progress": round(row["progress"], 4),
        "stage": row["stage"],
        "priority": row["priority"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "started_at": iso(row["started_at"]),
        "completed_at": iso(row["completed_at"]),
        "attempts": row["attempts"],
        "resumes": row["resumes"],
        "cancel_requested": bool(row["cancel_requested"]),
        "batch_id": row["batch_id"],
        "errors": jsonio.loads(row["errors"]),
        "result": jsonio.loads(row["result"]) if row["result"] is not None else None,
    }
