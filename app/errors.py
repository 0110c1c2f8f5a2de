"""Exceptions that carry meaning across modules: task failures and API errors."""


class TaskError(Exception):
    """A task cannot go on; `stage` says where it stopped."""

    retryable = False

    def __init__(self, message: str, *, stage: str | None = None):
        super().__init__(message)
        self.message = message
        self.stage = stage


class TransientError(TaskError):
    """Worth another attempt later (timeouts, connection errors, 429/5xx, a crashed tesseract)."""

    retryable = True

    def __init__(self, message: str, *, stage: str | None = None, retry_after: float | None = None):
        super().__init__(message, stage=stage)
        self.retry_after = retry_after


class PermanentError(TaskError):
    """Will fail the same way every time (unreadable input, a 4xx from the LLM, invalid reply)."""


class TaskCancelled(Exception):
    """The task was cancelled while it ran; raised at a stage boundary."""


class TaskTimedOut(TaskError):
    """The task passed its deadline."""


class BadInput(Exception):
    """A client error: becomes a JSON error with this status and code."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class TaskLost(Exception):
    """This attempt no longer owns the task (deadline passed, shutdown released it)."""


def excerpt(value, limit: int = 40) -> str:
    """A client's value for an error message: its repr, cut to a short prefix (never echo a megabyte back)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class StorageError(Exception):
    """The database could not be read or written (I/O error); worth trying again later."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StorageBusy(StorageError):
    """Another writer held the database longer than the busy timeout."""


class StorageFull(StorageError):
    """The disk holding the database or the files is full."""
