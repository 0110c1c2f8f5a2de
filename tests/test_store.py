"""The task store's contract: every transition is one guarded statement with exactly one winner.

Runs against every backend the `store` fixture offers (tests/backends.py); each test starts from
an empty database.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pytest

from app.engine.lifecycle import Lifecycle
from app.engine.notify import LocalNotifier
from app.engine.sqlite import SqliteDatabase
from app.engine.store import Guard, NewTask, TaskStore
from app.models import TaskStatus

NOW = 1_800_000_000.0


def new_task(tenant="t1", priority=5, **input_) -> NewTask:
    files = [{"sha256": uuid.uuid4().hex * 2, "media_type": "image/png", "pages": 1, "name": "p.png"}]
    return NewTask(id=str(uuid.uuid4()), tenant=tenant, type="document", priority=priority,
                   input={"files": files, "options": input_}, content_hash=uuid.uuid4().hex)


def add(store: TaskStore, **kw):
    (row,) = store.create_tasks([new_task(**kw)], NOW)
    return row["id"]


def claimed(store: TaskStore, task_id: str, claim="c1", now=NOW, lease=60.0):
    row = store.claim_task(task_id, claim, now, now + 600, now + lease)
    assert row is not None
    return row


def test_insert_then_claim_once(store):
    task_id = add(store)
    row = store.get_task(task_id)
    assert row["status"] == "pending" and row["phase"] == "ocr" and row["attempts"] == 0
    assert claimed(store, task_id)["attempts"] == 1
    assert store.claim_task(task_id, "c2", NOW, NOW + 600, NOW + 60) is None  # one winner
    assert store.get_task(task_id)["claim"] == "c1"


def test_a_late_attempt_writes_nothing(store):
    lifecycle = Lifecycle(store, LocalNotifier(), lambda: NOW)
    task_id = add(store)
    claimed(store, task_id, "old")
    assert lifecycle.finish(task_id, TaskStatus.FAILED, Guard.deadline(NOW + 601), error=("timeout", "late"))
    assert store.record_progress(task_id, "old", 0.5, "ocr 1/2 pages", NOW, NOW + 60) is None
    assert store.keep_page(task_id, "old", 0, {"text": "x"}) is False
    assert store.retry_later(task_id, "old", "extract", "boom", NOW, NOW, "extract") is False
    assert lifecycle.finish(task_id, TaskStatus.COMPLETED, Guard.attempt("old"), result={"a": 1}) is None
    row = store.get_task(task_id)
    assert row["status"] == "failed" and row["result"] is None
    assert [e["stage"] for e in json.loads(row["errors"])] == ["timeout"]


def test_finish_has_one_winner_and_announces_once(store):
    ended = []
    lifecycle = Lifecycle(store, LocalNotifier(), lambda: NOW)
    lifecycle.on_finished(ended.append)
    task_id = add(store)
    claimed(store, task_id)
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(lifecycle.finish(
        task_id, s, Guard.attempt("c1"), error=None if s is TaskStatus.COMPLETED else ("x", "y"))))
        for s in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1
    assert len(ended) == 1 and ended[0]["status"] == store.get_task(task_id)["status"]


def test_pages_are_kept_per_row_and_dropped_at_the_end(store):
    lifecycle = Lifecycle(store, LocalNotifier(), lambda: NOW)
    task_id = add(store)
    claimed(store, task_id)
    assert store.keep_page(task_id, "c1", 1, {"text": "second"})
    assert store.keep_page(task_id, "c1", 0, {"text": "first"})
    assert store.keep_page(task_id, "c1", 0, {"text": "first again"})  # a re-read replaces
    assert store.kept_pages(task_id) == {0: {"text": "first again"}, 1: {"text": "second"}}
    assert store.retry_later(task_id, "c1", "extract", "503", NOW, NOW + 1, "extract")
    row = store.get_task(task_id)
    assert row["status"] == "pending" and row["phase"] == "extract" and row["stage"] == "retry scheduled"
    assert store.claim_task(task_id, "c2", NOW, NOW + 600, NOW + 60) is None  # not due yet
    claimed(store, task_id, "c2", now=NOW + 2)
    assert len(store.kept_pages(task_id)) == 2  # survived the retry
    assert lifecycle.finish(task_id, TaskStatus.COMPLETED, Guard.attempt("c2"), result={"ok": True})
    assert store.kept_pages(task_id) == {}


def test_a_cancel_wins_over_a_retry(store):
    task_id = add(store, tenant="acme")
    claimed(store, task_id)
    assert store.request_cancel(task_id, "acme", NOW)
    assert store.retry_later(task_id, "c1", "extract", "503", NOW, NOW + 1, "extract") is False
    assert store.release_task(task_id, "c1", NOW) is False
    assert store.get_task(task_id)["status"] == "processing"


def test_client_cancel_outcomes(store):
    lifecycle = Lifecycle(store, LocalNotifier(), lambda: NOW)
    waiting, running, done = add(store, tenant="acme"), add(store, tenant="acme"), add(store, tenant="acme")
    claimed(store, running)
    claimed(store, done, "c9")
    lifecycle.finish(done, TaskStatus.COMPLETED, Guard.attempt("c9"), result={})
    assert lifecycle.cancel(waiting, "other")[0] == "missing"  # another tenant's id is unknown
    outcome, row = lifecycle.cancel(waiting, "acme")
    assert outcome == "cancelled" and row["status"] == "cancelled" and row["cancel_requested"] == 1
    outcome, row = lifecycle.cancel(running, "acme")
    assert outcome == "requested" and row["status"] == "processing" and row["cancel_requested"] == 1
    assert lifecycle.cancel(done, "acme")[0] == "finished"


def test_hand_off_leaves_the_row_processing_for_the_next_step(store):
    lifecycle = Lifecycle(store, LocalNotifier(), lambda: NOW)
    task_id = add(store, tenant="acme")
    claimed(store, task_id)
    assert store.hand_off(task_id, "c1", "extract", "extract queued", NOW)
    row = store.get_task(task_id)
    assert row["status"] == "processing" and row["claim"] is None and row["phase"] == "extract"
    again = store.claim_task(task_id, "c2", NOW + 1, NOW + 999, NOW + 61)
    assert again["attempts"] == 1 and again["deadline"] == row["deadline"]  # one attempt, two steps
    assert store.claim_task(task_id, "c3", NOW + 1, NOW + 999, NOW + 61) is None
    # A cancel between the two steps ends the task at once: no attempt holds it.
    assert store.hand_off(task_id, "c2", "extract", "extract queued", NOW)
    assert lifecycle.cancel(task_id, "acme")[0] == "cancelled"


def test_expired_leases_are_taken_back_and_counted(store):
    task_id = add(store)
    claimed(store, task_id, lease=10)
    assert [r["id"] for r in store.lease_expired(NOW + 5)] == []
    assert store.extend_leases({task_id: "c1"}, NOW + 30) == 1
    assert [r["id"] for r in store.lease_expired(NOW + 20)] == []
    assert [r["id"] for r in store.lease_expired(NOW + 31)] == [task_id]
    back = store.requeue_expired(task_id, NOW + 31, NOW + 31, max_resumes=3)
    assert back["id"] == task_id
    row = store.get_task(task_id)
    assert row["status"] == "pending" and row["resumes"] == 1 and row["claim"] is None
    assert json.loads(row["errors"])[-1]["stage"] == "recovery"
    # The old holder wakes up: its lease renewal and writes match nothing.
    assert store.extend_leases({task_id: "c1"}, NOW + 90) == 0
    assert store.record_progress(task_id, "c1", 0.5, "x", NOW + 32, NOW + 90) is None


def test_admission_caps_are_exact_under_concurrency(store):
    refused, accepted = [], []
    barrier = threading.Barrier(8)

    def submit():
        barrier.wait()
        rows = store.create_tasks([new_task()], NOW, limits=(5, 5, 1))
        (accepted if rows else refused).append(rows)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 5 and len(refused) == 3
    assert store.pending_counts("t1") == (5, 5)


def test_list_pages_newest_first(store):
    ids = [add(store, tenant="acme") for _ in range(5)]
    rows, cursor = store.list_tasks("acme", limit=2)
    assert [r["id"] for r in rows] == ids[:-3:-1] and cursor is not None
    rows, cursor = store.list_tasks("acme", limit=10, before_rowid=cursor)
    assert [r["id"] for r in rows] == ids[-3::-1] and cursor is None


def test_a_version_2_database_is_migrated(tmp_path):
    """A file written by the previous schema keeps its tasks, and its kept OCR becomes page rows."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript((Path(__file__).parent / "data" / "schema_v2.sql").read_text())
    files = json.dumps({"files": [{"sha256": "ab" * 32, "pages": 2}], "options": {"callback_url": "https://x.test/"}})
    conn.execute("INSERT INTO tasks (id, tenant, type, status, input, ocr_pages, created_at, updated_at, claim)"
                 " VALUES ('t-1', 'acme', 'document', 'processing', ?, ?, 1, 1, 'dead')",
                 (files, json.dumps([{"text": "one"}, {"text": "two"}])))
    conn.commit()
    conn.close()
    store = TaskStore(SqliteDatabase(path))
    store.init_schema()
    try:
        row = store.get_task("t-1")
        assert row["phase"] == "extract" and row["callback_url"] == "https://x.test/"
        assert store.kept_pages("t-1") == {0: {"text": "one"}, 1: {"text": "two"}}
        assert [r["id"] for r in store.lease_expired(time.time())] == ["t-1"]
        assert store.database.read("PRAGMA user_version")[0][0] == 3
        store.init_schema()  # applying it again changes nothing
        assert store.get_task("t-1")["phase"] == "extract"
    finally:
        store.close_all()


def test_webhook_attempts_whose_message_was_lost_are_sent_again(store):
    """A broker that lost a first attempt or a scheduled retry: the janitor's round sends it again, once it is overdue."""
    from app.config import Settings
    from app.engine.roles import QueuedWebhooks
    from app.webhooks import MAX_RETRY_DELAY

    class Recorder:
        def __init__(self):
            self.sent = []

        def send_webhook(self, task_id, attempt, delay):
            self.sent.append((task_id, attempt))
            return True

    settings = Settings(redispatch_after=300.0)
    lifecycle = Lifecycle(store, LocalNotifier(), lambda: NOW)
    never, failed_once, delivered = (add(store, callback_url="http://example.org/hook") for _ in range(3))
    for task_id in (never, failed_once, delivered):
        claimed(store, task_id)
        assert lifecycle.finish(task_id, TaskStatus.COMPLETED, Guard.attempt("c1"), result={"a": 1})
    store.record_webhook_attempt(failed_once, "http://example.org/hook", 1, 503, "unavailable", False, NOW + 1)
    store.record_webhook_attempt(delivered, "http://example.org/hook", 1, 200, None, True, NOW + 1)

    def round_at(now):
        recorder = Recorder()
        QueuedWebhooks(settings, store, lambda tenant: "secret", recorder, clock=lambda: now).resend_lost()
        return sorted(recorder.sent)

    assert round_at(NOW + 10) == []  # the messages may still be on their way
    assert round_at(NOW + 301) == [(never, 1)]  # the retry's countdown may still be running
    assert round_at(NOW + 1 + MAX_RETRY_DELAY + 301) == sorted([(never, 1), (failed_once, 2)])


def test_worker_heartbeats_are_read_since_a_time_and_old_ones_forgotten(store):
    if store.dialect.name == "sqlite":
        pytest.skip("worker heartbeats are the distributed mode's: the embedded process is its own worker")
    store.heartbeat("w-old", "ocr", 2, 2, 0, NOW - 2000, NOW - 1000)
    store.heartbeat("w-new", "ocr,extract", 4, 2, 1, NOW - 10, NOW)
    assert [w["name"] for w in store.workers_seen_since(NOW - 5000)] == ["w-old", "w-new"]
    store.forget_workers_before(NOW - 600)
    assert [(w["name"], w["busy"]) for w in store.workers_seen_since(NOW - 5000)] == [("w-new", 1)]
