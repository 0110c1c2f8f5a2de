"""Every connection and every SQL statement of docproc.

Each state change is one guarded statement (`WHERE id = ? AND status IN (...)`); callers
learn from the return value whether they won the race, never from a silent overwrite.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import jsonio
from .models import TaskStatus

logger = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema.sql"
SCHEMA_VERSION = 2
_LIVE = ("pending", "processing")
_FINISHED = ("completed", "failed", "cancelled")


class LostRace(Exception):
    """A guarded statement changed no row: another actor moved the task first."""


class _Refused(Exception):
    """Inside create_tasks: the pending caps refused the insert; roll the whole call back."""


def _append_error(stage_param: str = "?") -> str:
    # One expression that appends {at, stage, message, attempt} to the JSON list in place.
    return (
        "errors = json_insert(errors, '$[#]', json_object("
        "'at', strftime('%Y-%m-%dT%H:%M:%fZ', ?, 'unixepoch'), "
        f"'stage', {stage_param}, 'message', ?, 'attempt', attempts))"
    )


@dataclass
class NewTask:
    """A task row about to be inserted; input["files"] names the files it reads (task_files follows it)."""

    id: str
    tenant: str
    type: str
    priority: int
    input: dict
    content_hash: str | None
    batch_id: str | None = None
    cached_result: dict | None = None  # set: the task is born completed from the cache


class Database:
    """Owns the SQLite file: one connection per thread, WAL, busy timeout, the schema."""

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 10000):
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()  # re-entrant: a nested BEGIN fails in SQLite, not here

    # -- connections -------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_ms / 1000)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK and re-raise."""
        conn = self.connection()
        # Writers of this process queue here: SQLite's busy handler would sleep 1-100 ms instead.
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close_all(self) -> None:
        """Close every thread's connection (at shutdown, after the threads stopped)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.ProgrammingError:
                pass
        self._local = threading.local()

    def init_schema(self) -> None:
        """Apply schema.sql; refuse a database written by a newer docproc."""
        conn = self.connection()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"database schema version {version} is newer than this docproc ({SCHEMA_VERSION})")
        conn.executescript(SCHEMA_PATH.read_text())

    # -- intake ------------------------------------------------------------------------
    # One statement stores a task and (through the trigger) its file list. With admission on, the
    # row goes in only while the pending counts stay within the caps: check and insert are atomic.
    _INSERT_TASK = (
        "INSERT INTO tasks (id, tenant, type, status, priority, progress, stage, input, result,"
        " content_hash, batch_id, created_at, updated_at, started_at, completed_at)"
        " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
        " WHERE ? OR ((SELECT count(*) FROM tasks WHERE status IN ('pending', 'processing')) <= ?"
        " AND (SELECT count(*) FROM tasks WHERE tenant = ? AND status IN ('pending', 'processing')) <= ?)"
        " RETURNING *"
    )

    def create_tasks(self, tasks: list[NewTask], now: float, batch: dict | None = None,
                     limits: tuple[int, int, int] | None = None) -> list[sqlite3.Row] | None:
        """Insert tasks (and their batch) atomically; the rows as stored.

        limits = (max pending, max pending for the tenant, tasks this call adds to pending): when
        the caps would be exceeded nothing is stored and the answer is None.
        """
        def params(t: NewTask, guarded: bool) -> tuple:
            done = t.cached_result is not None
            max_total, max_mine, adding = limits if guarded else (0, 0, 0)
            return (
                t.id, t.tenant, t.type, TaskStatus.COMPLETED if done else TaskStatus.PENDING,
                t.priority, 1.0 if done else 0.0, "done" if done else "queued",
                jsonio.dumps(t.input), jsonio.dumps(t.cached_result) if done else None,
                t.content_hash, t.batch_id, now, now, now if done else None, now if done else None,
                not guarded, max_total - adding, t.tenant, max_mine - adding,
            )

        if len(tasks) == 1 and not batch:
            # The common case, in autocommit: the lock covers one statement (stepped to its end).
            conn = self.connection()
            with self._write_lock:
                rows = conn.execute(self._INSERT_TASK, params(tasks[0], limits is not None)).fetchall()
            return rows or None
        rows = []
        try:
            with self.transaction() as conn:
                if batch:
                    conn.execute(
                        "INSERT INTO batches (id, tenant, type, created_at) VALUES (?, ?, ?, ?)",
                        (batch["id"], batch["tenant"], batch["type"], now),
                    )
                for n, t in enumerate(tasks):  # the first insert checks the caps for the whole call
                    row = conn.execute(self._INSERT_TASK, params(t, limits is not None and n == 0)).fetchone()
                    if row is None:
                        raise _Refused
                    rows.append(row)
        except _Refused:
            return None
        return rows

    def cached_result(self, tenant: str, content_hash: str) -> dict | None:
        """The result of the newest completed task of this tenant with the same content hash."""
        row = self.connection().execute(
            "SELECT result FROM tasks WHERE tenant = ? AND content_hash = ? AND status = 'completed'"
            " ORDER BY completed_at DESC LIMIT 1",
            (tenant, content_hash),
        ).fetchone()
        return jsonio.loads(row["result"]) if row else None

    def cancel_requested(self, task_id: str) -> bool:
        """Whether a cancel was asked for (read while a task waits on its pages)."""
        row = self.connection().execute("SELECT cancel_requested FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return bool(row and row[0])

    def same_work(self, tenant: str, content_hash: str | None) -> list[str]:
        """Completed tasks of this tenant that did this work (the sources of a cached result), newest first."""
        if not content_hash:
            return []
        return [r[0] for r in self.connection().execute(
            "SELECT id FROM tasks WHERE tenant = ? AND content_hash = ? AND status = 'completed' AND files_purged = 0"
            " ORDER BY completed_at DESC LIMIT 20", (tenant, content_hash))]

    def pending_counts(self, tenant: str) -> tuple[int, int]:
        """Unfinished tasks (all tenants, this tenant), for backpressure."""
        row = self.connection().execute(
            "SELECT count(*), coalesce(sum(tenant = ?), 0) FROM tasks WHERE status IN ('pending', 'processing')",
            (tenant,),
        ).fetchone()
        return row[0], row[1]

    # -- reads -------------------------------------------------------------------------
    def get_task(self, task_id: str, tenant: str | None = None) -> sqlite3.Row | None:
        """One task; with a tenant, only if it belongs to that tenant."""
        if tenant is None:
            return self.connection().execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return self.connection().execute(
            "SELECT * FROM tasks WHERE id = ? AND tenant = ?", (task_id, tenant)
        ).fetchone()

    def list_tasks(self, tenant: str, *, status=None, type_=None, limit=50, before_rowid=None):
        """Newest first; returns (rows, rowid of the last row or None when there is no more)."""
        where, args = ["tenant = ?"], [tenant]
        if status:
            where.append("status = ?")
            args.append(status)
        if type_:
            where.append("type = ?")
            args.append(type_)
        if before_rowid is not None:
            where.append("rowid < ?")
            args.append(before_rowid)
        rows = self.connection().execute(
            f"SELECT rowid AS _rowid, * FROM tasks WHERE {' AND '.join(where)} ORDER BY rowid DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1]["_rowid"] if more and rows else None)

    def batch_tasks(self, batch_id: str, tenant: str):
        """The batch row and its tasks, or (None, []) when unknown to this tenant."""
        conn = self.connection()
        batch = conn.execute("SELECT * FROM batches WHERE id = ? AND tenant = ?", (batch_id, tenant)).fetchone()
        if batch is None:
            return None, []
        rows = conn.execute("SELECT * FROM tasks WHERE batch_id = ? AND tenant = ? ORDER BY rowid", (batch_id, tenant)).fetchall()
        return batch, rows

    def completed_results(self, task_ids: list[str], tenant: str) -> dict[str, sqlite3.Row]:
        """Completed tasks of this tenant among task_ids (form filling's library)."""
        if not task_ids:
            return {}
        marks = ",".join("?" * len(task_ids))
        rows = self.connection().execute(
            f"SELECT id, type, status, result FROM tasks WHERE tenant = ? AND id IN ({marks})",
            (tenant, *task_ids),
        ).fetchall()
        return {r["id"]: r for r in rows}

    def stats(self, tenant: str | None) -> dict:
        """Counts by status and type, and mean wait and run times, for one tenant or all."""
        cond, args = ("WHERE tenant = ?", (tenant,)) if tenant is not None else ("", ())
        conn = self.connection()
        counts: dict = {}
        for r in conn.execute(f"SELECT type, status, count(*) AS n FROM tasks {cond} GROUP BY type, status", args):
            counts.setdefault(r["type"], {})[r["status"]] = r["n"]
        times = conn.execute(
            "SELECT avg(started_at - created_at) AS wait, avg(completed_at - started_at) AS run"
            f" FROM tasks {cond + (' AND' if cond else 'WHERE')} status = 'completed' AND started_at IS NOT NULL",
            args,
        ).fetchone()
        return {"counts": counts, "mean_wait_seconds": times["wait"], "mean_run_seconds": times["run"]}

    # -- the worker's transitions ------------------------------------------------------
    def claim_task(self, task_id: str, claim: str, now: float, deadline: float) -> sqlite3.Row | None:
        """pending -> processing for this claim token; None when the task is not claimable."""
        with self.transaction() as conn:
            return conn.execute(
                "UPDATE tasks SET status = 'processing', claim = ?, attempts = attempts + 1,"
                " started_at = coalesce(started_at, ?), updated_at = ?, deadline = ?, not_before = NULL,"
                " stage = 'starting' WHERE id = ? AND status = 'pending' AND cancel_requested = 0"
                " AND (not_before IS NULL OR not_before <= ?) RETURNING *",
                (claim, now, now, deadline, task_id, now),
            ).fetchone()

    def record_progress(self, task_id: str, claim: str, progress: float, stage: str, now: float,
                        ocr_page: tuple[int, dict] | None = None) -> bool | None:
        """Write progress (and the OCR of one page as soon as it is read, kept by page index for a
        retry); returns cancel_requested, or None when the attempt lost the task."""
        index, page = ocr_page if ocr_page is not None else (None, None)
        row = self.connection().execute(
            "UPDATE tasks SET progress = max(progress, ?), stage = ?, updated_at = ?,"
            " ocr_pages = CASE WHEN ? IS NULL THEN ocr_pages"
            " ELSE json_set(coalesce(ocr_pages, '{}'), '$.\"' || ? || '\"', json(?)) END"
            " WHERE id = ? AND claim = ? AND status = 'processing' RETURNING cancel_requested",
            (min(max(progress, 0.0), 1.0), stage, now, index, index, None if page is None else json.dumps(page),
             task_id, claim),
        ).fetchone()
        return None if row is None else bool(row[0])

    def complete_task(self, task_id: str, claim: str, result: dict, now: float) -> bool:
        """processing -> completed with the result; False when the attempt no longer owns the task."""
        cur = self.connection().execute(
            "UPDATE tasks SET status = 'completed', result = ?, progress = 1, stage = 'done',"
            " updated_at = ?, completed_at = ?, claim = NULL, ocr_pages = NULL"
            " WHERE id = ? AND claim = ? AND status = 'processing'",
            (json.dumps(result), now, now, task_id, claim),
        )
        return cur.rowcount == 1

    def fail_task(self, task_id: str, claim: str, stage: str, message: str, now: float,
                  status: TaskStatus = TaskStatus.FAILED) -> bool:
        """processing -> failed (or cancelled), with an error entry; False on a lost race."""
        cur = self.connection().execute(
            f"UPDATE tasks SET status = ?, {_append_error()}, updated_at = ?, completed_at = ?,"
            " claim = NULL, ocr_pages = NULL WHERE id = ? AND claim = ? AND status = 'processing'",
            (status.value, now, stage, message, now, now, task_id, claim),
        )
        return cur.rowcount == 1

    def retry_later(self, task_id: str, claim: str, stage: str, message: str, now: float, not_before: float) -> bool:
        """processing -> pending until not_before, with an error entry; False on a lost race."""
        cur = self.connection().execute(
            # A cancel asked for during the attempt wins over the retry.
            f"UPDATE tasks SET {_append_error()}, updated_at = ?, not_before = ?, claim = NULL,"
            " status = CASE cancel_requested WHEN 1 THEN 'cancelled' ELSE 'pending' END,"
            " completed_at = CASE cancel_requested WHEN 1 THEN ? END,"
            " stage = CASE cancel_requested WHEN 1 THEN 'cancelled' ELSE 'retry scheduled' END"
            " WHERE id = ? AND claim = ? AND status = 'processing'",
            (now, stage, message, now, not_before, now, task_id, claim),
        )
        return cur.rowcount == 1

    def release_task(self, task_id: str, claim: str, now: float) -> bool:
        """processing -> pending at shutdown, so the next start runs it again."""
        cur = self.connection().execute(
            f"UPDATE tasks SET {_append_error()}, updated_at = ?, claim = NULL, progress = 0,"
            " attempts = max(attempts - 1, 0),"
            " status = CASE cancel_requested WHEN 1 THEN 'cancelled' ELSE 'pending' END,"
            " completed_at = CASE cancel_requested WHEN 1 THEN ? END,"
            " stage = CASE cancel_requested WHEN 1 THEN 'cancelled' ELSE 'queued' END"
            " WHERE id = ? AND claim = ? AND status = 'processing'",
            (now, "shutdown", "service stopped before the task finished; it will run again", now, now, task_id, claim),
        )
        return cur.rowcount == 1

    def expire_deadlines(self, now: float) -> list[str]:
        """processing tasks past their deadline -> failed; their late writes then change nothing."""
        with self.transaction() as conn:
            rows = conn.execute(
                f"UPDATE tasks SET status = 'failed', {_append_error()}, updated_at = ?, completed_at = ?,"
                " claim = NULL WHERE status = 'processing' AND deadline < ? RETURNING id",
                (now, "timeout", "task passed its deadline (DOCPROC_TASK_TIMEOUT)", now, now, now),
            ).fetchall()
        return [r["id"] for r in rows]

    # -- cancel ------------------------------------------------------------------------
    def cancel_task(self, task_id: str, tenant: str, now: float) -> str:
        """'cancelled' (was pending), 'requested' (processing), 'finished' or 'missing'."""
        conn = self.connection()
        if conn.execute(
            f"UPDATE tasks SET status = 'cancelled', {_append_error()}, updated_at = ?, completed_at = ?,"
            " cancel_requested = 1 WHERE id = ? AND tenant = ? AND status = 'pending'",
            (now, "cancel", "cancelled by the client", now, now, task_id, tenant),
        ).rowcount:
            return "cancelled"
        if conn.execute(
            "UPDATE tasks SET cancel_requested = 1, updated_at = ? WHERE id = ? AND tenant = ? AND status = 'processing'",
            (now, task_id, tenant),
        ).rowcount:
            return "requested"
        return "finished" if self.get_task(task_id, tenant) is not None else "missing"

    # -- start-up ----------------------------------------------------------------------
    def recover(self, now: float, max_resumes: int) -> tuple[list[str], list[str]]:
        """Tasks a dead process left processing: resume (pending again) or fail past max_resumes."""
        with self.transaction() as conn:
            conn.execute(
                f"UPDATE tasks SET status = 'cancelled', {_append_error()}, updated_at = ?, completed_at = ?,"
                " claim = NULL WHERE status = 'processing' AND cancel_requested = 1",
                (now, "recovery", "cancelled while the service was down", now, now),
            )
            failed = conn.execute(
                f"UPDATE tasks SET status = 'failed', {_append_error()}, updated_at = ?, completed_at = ?,"
                " claim = NULL WHERE status = 'processing' AND resumes >= ? RETURNING id",
                (now, "recovery", f"the service died while running this task {max_resumes + 1} times; giving up",
                 now, now, max_resumes),
            ).fetchall()
            resumed = conn.execute(
                f"UPDATE tasks SET status = 'pending', {_append_error()}, updated_at = ?, claim = NULL,"
                " resumes = resumes + 1, stage = 'queued', progress = 0"
                " WHERE status = 'processing' RETURNING id",
                (now, "recovery", "the service stopped while this task ran; resumed", now),
            ).fetchall()
        return [r["id"] for r in resumed], [r["id"] for r in failed]

    def pending_tasks(self) -> list[sqlite3.Row]:
        """Every pending task, for rebuilding the in-memory queue."""
        return self.connection().execute(
            "SELECT id, priority, not_before FROM tasks WHERE status = 'pending' ORDER BY priority DESC, rowid"
        ).fetchall()

    # -- retention ---------------------------------------------------------------------
    def purgeable_files(self, cutoff: float) -> tuple[list[str], list[str]]:
        """(task ids whose files may go, hashes no live or recent task still reads)."""
        conn = self.connection()
        tasks = [r[0] for r in conn.execute(
            "SELECT id FROM tasks WHERE status IN ('completed', 'failed', 'cancelled')"
            " AND files_purged = 0 AND completed_at < ?", (cutoff,))]
        hashes = [r[0] for r in conn.execute(
            "SELECT DISTINCT tf.sha256 FROM task_files tf JOIN tasks t ON t.id = tf.task_id"
            " WHERE t.files_purged = 0 AND t.status IN ('completed', 'failed', 'cancelled') AND t.completed_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM task_files tf2 JOIN tasks t2 ON t2.id = tf2.task_id"
            "   WHERE tf2.sha256 = tf.sha256 AND (t2.status IN ('pending', 'processing') OR t2.completed_at >= ?))",
            (cutoff, cutoff))]
        return tasks, hashes

    def mark_files_purged(self, task_ids: list[str]) -> None:
        with self.transaction() as conn:
            conn.executemany("UPDATE tasks SET files_purged = 1 WHERE id = ?", [(t,) for t in task_ids])

    def delete_finished_tasks(self, cutoff: float) -> int:
        """Delete finished tasks older than cutoff (task_files go with them)."""
        with self.transaction() as conn:
            n = conn.execute(
                "DELETE FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') AND completed_at < ?",
                (cutoff,),
            ).rowcount
            conn.execute("DELETE FROM batches WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE batch_id = batches.id)")
        return n

    def file_is_referenced(self, sha256: str) -> bool:
        """Whether any task row still names this file."""
        return self.connection().execute(
            "SELECT 1 FROM task_files tf JOIN tasks t ON t.id = tf.task_id WHERE tf.sha256 = ? AND t.files_purged = 0 LIMIT 1",
            (sha256,),
        ).fetchone() is not None

    def file_needed_since(self, sha256: str, cutoff: float) -> bool:
        """Whether a live task, or one finished after cutoff, reads this file."""
        return self.connection().execute(
            "SELECT 1 FROM task_files tf JOIN tasks t ON t.id = tf.task_id WHERE tf.sha256 = ?"
            " AND (t.status IN ('pending', 'processing') OR t.completed_at >= ?) LIMIT 1",
            (sha256, cutoff),
        ).fetchone() is not None

    # -- webhooks ----------------------------------------------------------------------
    def record_webhook_attempt(self, task_id: str, url: str, attempt: int, status_code: int | None,
                               error: str | None, delivered: bool, now: float) -> None:
        """One delivery attempt of a task's callback; ignored when the task is gone."""
        self.connection().execute(
            "INSERT INTO webhook_deliveries (task_id, url, attempt, status_code, error, delivered, at)"
            " SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM tasks WHERE id = ?)",
            (task_id, url, attempt, status_code, error, int(delivered), now, task_id),
        )

    def webhook_attempts(self, task_id: str) -> list[sqlite3.Row]:
        """Every delivery attempt of this task's callback, oldest first."""
        return self.connection().execute(
            "SELECT attempt, status_code, error, delivered, at FROM webhook_deliveries WHERE task_id = ? ORDER BY id",
            (task_id,),
        ).fetchall()

    def webhooks_to_resume(self, since: float, max_attempts: int) -> list[sqlite3.Row]:
        """Tasks finished since `since` with a callback neither delivered nor given up on."""
        return self.connection().execute(
            "SELECT t.*, coalesce(d.last_attempt, 0) AS last_attempt FROM tasks t"
            " LEFT JOIN (SELECT task_id, max(attempt) AS last_attempt, max(delivered) AS delivered"
            "   FROM webhook_deliveries GROUP BY task_id) d ON d.task_id = t.id"
            " WHERE t.completed_at >= ? AND t.status IN ('completed', 'failed', 'cancelled')"
            " AND json_extract(t.input, '$.options.callback_url') IS NOT NULL"
            " AND coalesce(d.delivered, 0) = 0 AND coalesce(d.last_attempt, 0) < ?",
            (since, max_attempts),
        ).fetchall()

    # -- API keys and tenants (auth) ---------------------------------------------------
    def insert_api_key(self, prefix: str, tenant: str, key_hash: str, now: float) -> bool:
        """Store a new key's hash; False when the prefix is already taken."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO api_keys (prefix, tenant, key_hash, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (prefix) DO NOTHING",
                (prefix, tenant, key_hash, now),
            )
        return cur.rowcount == 1

    def api_key(self, prefix: str) -> sqlite3.Row | None:
        """The key row with this public prefix (revoked or not)."""
        return self.connection().execute(
            "SELECT prefix, tenant, key_hash, revoked_at, last_used_at FROM api_keys WHERE prefix = ?", (prefix,)
        ).fetchone()

    def has_active_api_keys(self) -> bool:
        return self.connection().execute(
            "SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1"
        ).fetchone() is not None

    def list_api_keys(self) -> list[sqlite3.Row]:
        """Every key without its hash, oldest first."""
        return self.connection().execute(
            "SELECT prefix, tenant, created_at, revoked_at, last_used_at FROM api_keys ORDER BY created_at, prefix"
        ).fetchall()

    def revoke_api_key(self, prefix: str, now: float) -> bool:
        """active -> revoked; False when there is no active key with this prefix."""
        with self.transaction() as conn:
            cur = conn.execute("UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL", (now, prefix))
        return cur.rowcount == 1

    def touch_api_key(self, prefix: str, now: float) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE prefix = ?", (now, prefix))

    def tenant_secret(self, tenant: str, new_secret: str, now: float) -> str:
        """The tenant's webhook secret; new_secret is stored first if the tenant has none yet."""
        conn = self.connection()
        row = conn.execute("SELECT webhook_secret FROM tenants WHERE name = ?", (tenant,)).fetchone()
        if row is None:
            # A racing first use loses quietly and both read the one stored secret.
            with self.transaction() as tx:
                tx.execute(
                    "INSERT INTO tenants (name, webhook_secret, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                    (tenant, new_secret, now),
                )
            row = conn.execute("SELECT webhook_secret FROM tenants WHERE name = ?", (tenant,)).fetchone()
        return row["webhook_secret"]
