"""The task engine: a store (the truth), a dispatcher (who runs what next), a notifier (who hears of
changes), one step that runs a task (execute.py) and one function that ends it (lifecycle.py).

Embedded (the default): SQLite, the in-process queue and worker threads. Distributed: PostgreSQL
and Celery over Redis, chosen by DOCPROC_DATABASE_URL and DOCPROC_BROKER_URL.
"""
from __future__ import annotations


def open_store(settings, *, clock=None):
    """The task store on the configured database, its schema brought up to date."""
    import time

    from .store import TaskStore

    if getattr(settings, "database_url", ""):
        from .postgres import PostgresDatabase

        database = PostgresDatabase(settings.database_url, clock=clock or time.time,
                                    lock_timeout_ms=int(settings.db_busy_timeout * 1000),
                                    max_size=max(16, settings.effective_workers + 8))  # opened as needed
    else:
        from .sqlite import SqliteDatabase

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = SqliteDatabase(settings.db_path, busy_timeout_ms=int(settings.db_busy_timeout * 1000),
                                  clock=clock or time.time)
    store = TaskStore(database)
    store.init_schema()
    return store
