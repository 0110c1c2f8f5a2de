"""The engine's seams: a database under the task store, a dispatcher, a notifier.

Embedded: SqliteDatabase, the in-process queue and worker threads, LocalNotifier.
Distributed: PostgresDatabase, Celery over Redis, PostgresNotifier (LISTEN/NOTIFY).
Both run every task through the same `Executor.execute` and end it through `Lifecycle.finish`.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable, Protocol

from .sql import Dialect


class Result(Protocol):
    rows: list  # rows of a SELECT or a RETURNING clause, each readable by column name
    rowcount: int


class Transaction(Protocol):
    def execute(self, statement: str, args: tuple = ()) -> Result: ...


class Database(Protocol):
    """Connections, transactions and faults of one backend; TaskStore holds the statements."""

    dialect: Dialect
    fault: dict | None  # {"at", "error"} of the last storage fault, None once a write succeeds again

    def read(self, statement: str, args: tuple = ()) -> list: ...

    def write(self, statement: str, args: tuple = ()) -> Result:
        """One statement, committed on its own; faults raise app.errors.StorageError subclasses."""

    def write_many(self, statement: str, rows: list[tuple]) -> int: ...

    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """True inside when this process holds the named lock across every process of the service."""

    def init_schema(self) -> None: ...

    def close_all(self) -> None: ...


class Dispatcher(Protocol):
    """Who runs what next: ids only, the database stays the truth."""

    split_steps: bool  # True: OCR and extraction run as two steps on two queues (`ocr`, `extract`)

    def dispatch(self, task_id: str, priority: int, *, phase: str = "ocr", not_before: float | None = None) -> bool:
        """Offer a task id to the queue of its next step; False when it could not be queued now
        (the janitor offers it again)."""

    def depth(self) -> int | None:
        """Ids waiting, when the dispatcher can tell cheaply."""


class Notifier(Protocol):
    """Changes to tasks, heard by long-polls, event streams and the workers of every process."""

    def publish(self, task_id: str) -> None: ...

    def version(self, task_id: str) -> int: ...

    def wait(self, task_id: str, seen: int, timeout: float) -> int:
        """Block until the task's version differs from `seen` or the timeout; the version."""

    def announce_cancel(self, task_id: str) -> None:
        """A cancel was asked for: whoever runs the task stops its running OCR at once."""

    def on_cancel(self, hook: Callable[[str], None]) -> None: ...

    def close(self) -> None:
        """Shutdown: wake every waiter now; later waits return at once."""
