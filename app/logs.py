"""Log set-up: plain text or one JSON object per line (DOCPROC_LOG_FORMAT=json)."""
from __future__ import annotations

import json
import logging
import re
import sys
import time

_TASK_ID = re.compile(r"\btask ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with task_id lifted out of the message when present."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "thread": record.threadName,
            "message": message,
        }
        match = _TASK_ID.search(message)
        if match:
            entry["task_id"] = match.group(1)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" noise under load
