"""The databases the store's contract tests run against; each `store` starts empty.

"postgres" is a fresh database of the session's throwaway PostgreSQL server (tests/servers.py),
copied from a template that already has the schema.
"""
from __future__ import annotations

from app.engine.sqlite import SqliteDatabase
from app.engine.store import TaskStore

BACKENDS = ["sqlite", "postgres"]


def open_backend(name: str, tmp_path, postgres=None) -> TaskStore:
    """An empty store; `postgres` is the pg_template fixture's (server, template) for that backend."""
    if name == "sqlite":
        store = TaskStore(SqliteDatabase(tmp_path / "store.sqlite3"))
    elif name == "postgres":
        from app.engine.postgres import PostgresDatabase

        server, template = postgres
        url = server.new_database(template)
        store = TaskStore(PostgresDatabase(url))
        store.drop = lambda: server.drop_database(url)  # called by the fixture after close_all
    else:
        raise ValueError(name)
    store.init_schema()
    return store
