"""The databases the store's contract tests run against; each `store` starts empty."""
from __future__ import annotations

from app.engine.sqlite import SqliteDatabase
from app.engine.store import TaskStore

BACKENDS = ["sqlite"]


def open_backend(name: str, tmp_path) -> TaskStore:
    if name == "sqlite":
        store = TaskStore(SqliteDatabase(tmp_path / "store.sqlite3"))
    else:
        raise ValueError(name)
    store.init_schema()
    return store
