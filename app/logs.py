"""Log set-up: plain text or one JSON object per line (DOCPROC_LOG_FORMAT=json)."""
from __future__ import annotations

import json
import logging
import re
import sys
import time

from .models import UUID_PATTERN

_TASK_ID = re.compile(rf"\btask ({UUID_PATTERN})\b")
# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        match = _TASK_ID.search(message)
        if match and "task_id" not in entry:
            entry["task_id"] = match.group(1)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an odd value passed in `extra=` must not cost the whole line.
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(settings) -> None:
    """Send every log record to stderr, one line each, in the configured format and level."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level if settings.log_level in LEVELS else "INFO")
    if settings.log_level not in LEVELS:
        logging.getLogger(__name__).warning("DOCPROC_LOG_LEVEL %r is not one of %s; using INFO",
                                            settings.log_level, ", ".join(LEVELS))
