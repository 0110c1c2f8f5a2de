"""What the PostgreSQL backend adds to the store's contract: its faults, its locks, its schema."""
from __future__ import annotations

import threading

import psycopg
import pytest

from app.engine.postgres import PostgresDatabase, placeholders
from app.engine.store import TaskStore
from app.errors import StorageBusy, StorageError
from test_store import NOW, add, claimed


@pytest.fixture
def pg(pg_template):
    server, template = pg_template
    url = server.new_database(template)
    store = TaskStore(PostgresDatabase(url, lock_timeout_ms=300))
    store.init_schema()
    yield store, url
    store.close_all()
    server.drop_database(url)


def test_placeholders_keep_literal_percent_signs():
    assert placeholders("SELECT '100%' AS p, ? AS v WHERE x LIKE 'a%'") == \
        "SELECT '100%%' AS p, %s AS v WHERE x LIKE 'a%%'"


def test_a_held_row_lock_is_storage_busy_then_the_write_succeeds(pg):
    store, url = pg
    task_id = add(store)
    with psycopg.connect(url) as other:  # not autocommit: the row stays locked until rollback
        other.execute("SELECT 1 FROM tasks WHERE id = %s FOR UPDATE", (task_id,))
        with pytest.raises(StorageBusy):
            store.claim_task(task_id, "c1", NOW, NOW + 600, NOW + 60)
        assert store.fault is not None and "busy" in store.fault["error"]
        other.rollback()
    assert claimed(store, task_id)["claim"] == "c1"
    assert store.fault is None  # a write succeeded again


def test_a_lost_connection_is_a_storage_error_and_the_pool_recovers(pg):
    store, url = pg
    add(store)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    try:
        store.pending_counts("t1")
    except StorageError:
        pass  # the pooled connection died under us: reported as a storage fault, never a raw psycopg error
    assert store.pending_counts("t1") == (1, 1)


def test_exclusive_is_one_holder_across_processes(pg):
    store, url = pg
    other = PostgresDatabase(url)  # another pool: another process as far as the server knows
    try:
        with store.exclusive("janitor") as mine:
            assert mine
            seen = []
            t = threading.Thread(target=lambda: seen.append(other.exclusive("janitor").__enter__()))
            t.start()
            t.join(10)
            assert seen == [False]
        with other.exclusive("janitor") as mine_now:
            assert mine_now  # released at the end of the first round
    finally:
        other.close_all()


def test_schema_is_versioned_and_applied_again_without_change(pg):
    store, _ = pg
    task_id = add(store)
    store.init_schema()
    store.init_schema()
    assert store.database.read("SELECT version FROM schema_version", ()) == [{"version": 3}]
    assert store.get_task(task_id)["status"] == "pending"
    files = store.database.read("SELECT position, sha256 FROM task_files WHERE task_id = ?", (task_id,))
    assert len(files) == 1 and files[0]["position"] == 0 and len(files[0]["sha256"]) == 64


def test_invalid_json_is_refused_like_sqlite(pg):
    store, _ = pg
    with pytest.raises(psycopg.Error):
        store.database.write("INSERT INTO tasks (id, tenant, type, input, created_at, updated_at)"
                             " VALUES (?, ?, ?, ?, ?, ?)", ("x", "t", "document", "{not json", NOW, NOW))


def test_the_rate_limit_is_one_bucket_across_api_processes(pg):
    from app.engine.ratelimit import DatabaseRateLimiter

    store, url = pg
    other = TaskStore(PostgresDatabase(url))  # a second API process
    now = [NOW]
    try:
        a = DatabaseRateLimiter(store, rate=2.0, burst=4, clock=lambda: now[0])
        b = DatabaseRateLimiter(other, rate=2.0, burst=4, clock=lambda: now[0])
        assert [lim.take("key1") for lim in (a, b, a, b)] == [0.0] * 4  # the burst, shared
        assert b.take("key1") == pytest.approx(0.5)  # empty: a token is back in 1/rate seconds
        assert a.take("key2") == 0.0  # another key has its own bucket
        now[0] += 0.5
        assert a.take("key1") == 0.0 and b.take("key1") > 0
        now[0] += 100
        assert [b.take("key1") for _ in range(5)].count(0.0) == 4  # refilled up to the burst, not beyond
    finally:
        other.close_all()
