"""The task store: every read and guarded transition of task rows, over SQLite or PostgreSQL.

The statements live in sql.py; a backend database (sqlite.py, postgres.py) owns connections,
transactions and the translation of its faults into StorageBusy / StorageFull. Each state change
is one guarded statement: a caller learns from the return value whether it won, never from a
silent overwrite.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace

from .. import jsonio
from ..models import TaskStatus, iso
from . import sql

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Guard:
    """Who may end a task: the attempt holding a claim, a client, or the janitor past a deadline or lease."""

    kind: str  # a key of sql.FINISH_GUARDS
    value: object

    @classmethod
    def attempt(cls, claim: str) -> "Guard":
        return cls("attempt", claim)

    @classmethod
    def client(cls, tenant: str) -> "Guard":
        return cls("client", tenant)

    @classmethod
    def deadline(cls, now: float) -> "Guard":
        return cls("deadline", now)

    @classmethod
    def lease(cls, now: float) -> "Guard":
        return cls("lease", now)


def error_entry(now: float, stage: str, message: str) -> str:
    """One entry of a task's `errors`; the statement adds the attempt number from the row."""
    return jsonio.dumps({"at": iso(now), "stage": stage, "message": message})


class _Refused(Exception):
    """Inside create_tasks: the pending caps refused the insert; roll the whole call back."""


class TaskStore:
    """Named operations on tasks, keys, tenants and webhook deliveries; the SQL is in sql.py."""

    def __init__(self, database):
        self.database = database
        self.dialect: sql.Dialect = database.dialect
        self.q = SimpleNamespace(**{
            name: self.dialect.render(value) for name, value in vars(sql).items()
            if name.isupper() and isinstance(value, str)
        })

    def _one(self, statement: str, *args):
        rows = self.database.read(statement, args)
        return rows[0] if rows else None

    # -- lifecycle of the store itself ----------------------------------------------------
    def init_schema(self) -> None:
        self.database.init_schema()

    def close_all(self) -> None:
        self.database.close_all()

    @property
    def fault(self):
        """The last storage fault still unresolved (None when writes succeed again), for health."""
        return self.database.fault

    def exclusive(self, name: str):
        """Context manager: True inside when this process holds the named lock (the janitor's round)."""
        return self.database.exclusive(name)

    # -- intake --------------------------------------------------------------------------
    def create_tasks(self, tasks: list[NewTask], now: float, batch: dict | None = None,
                     limits: tuple[int, int, int] | None = None) -> list | None:
        """Insert tasks (and their batch) in one transaction; the rows as stored.

        limits = (max pending, max pending for the tenant, tasks this call adds to pending): when the
        caps would be exceeded nothing is stored and the answer is None.
        """
        def params(t: NewTask, guarded: bool) -> tuple:
            done = t.cached_result is not None
            max_total, max_mine, adding = limits if guarded else (0, 0, 0)
            return (
                t.id, t.tenant, t.type, TaskStatus.COMPLETED.value if done else TaskStatus.PENDING.value,
                t.priority, 1.0 if done else 0.0, "done" if done else "queued",
                jsonio.dumps(t.input), jsonio.dumps(t.cached_result) if done else None,
                t.content_hash, t.batch_id, t.input.get("options", {}).get("callback_url"),
                now, now, now if done else None, now if done else None, None if done else now,
                0 if guarded else 1, max_total - adding, t.tenant, max_mine - adding,
            )

        rows = []
        try:
            with self.database.transaction() as tx:
                if limits is not None and self.dialect.admission_lock:
                    tx.execute(self.dialect.admission_lock)
                if batch:
                    tx.execute(self.q.INSERT_BATCH, (batch["id"], batch["tenant"], batch["type"], now))
                for n, t in enumerate(tasks):  # the first insert checks the caps for the whole call
                    found = tx.execute(self.q.INSERT_TASK, params(t, limits is not None and n == 0)).rows
                    if not found:
                        raise _Refused
                    rows.append(found[0])
        except _Refused:
            return None
        return rows

    def cached_result(self, tenant: str, content_hash: str) -> dict | None:
        """The result of the newest completed task of this tenant with the same content hash."""
        row = self._one(self.q.CACHED_RESULT, tenant, content_hash)
        return jsonio.loads(row["result"]) if row else None

    def same_work(self, tenant: str, content_hash: str | None) -> list[str]:
        """Completed tasks of this tenant that did this work (the sources of a cached result), newest first."""
        if not content_hash:
            return []
        return [r["id"] for r in self.database.read(self.q.SAME_WORK, (tenant, content_hash))]

    def pending_counts(self, tenant: str) -> tuple[int, int]:
        """Unfinished tasks (all tenants, this tenant), for backpressure."""
        row = self._one(self.q.PENDING_COUNTS, tenant)
        return int(row["total"]), int(row["mine"])

    # -- reads -------------------------------------------------------------------------
    def get_task(self, task_id: str, tenant: str | None = None):
        """One task; with a tenant, only if it belongs to that tenant."""
        if tenant is None:
            return self._one(self.q.GET_TASK, task_id)
        return self._one(self.q.GET_TENANT_TASK, task_id, tenant)

    def list_tasks(self, tenant: str, *, status=None, type_=None, limit=50, before_rowid=None):
        """Newest first; returns (rows, cursor of the last row or None when there is no more)."""
        where, args = ["tenant = ?"], [tenant]
        if status:
            where.append("status = ?")
            args.append(status)
        if type_:
            where.append("type = ?")
            args.append(type_)
        if before_rowid is not None:
            where.append(f"{self.dialect.seq} < ?")
            args.append(before_rowid)
        rows = self.database.read(self.q.LIST_TASKS.replace("{where}", " AND ".join(where)), (*args, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1]["cursor_seq"] if more and rows else None)

    def batch_tasks(self, batch_id: str, tenant: str):
        """The batch row and its tasks, or (None, []) when unknown to this tenant."""
        batch = self._one(self.q.GET_BATCH, batch_id, tenant)
        if batch is None:
            return None, []
        return batch, self.database.read(self.q.BATCH_TASKS, (batch_id, tenant))

    def completed_results(self, task_ids: list[str], tenant: str) -> dict:
        """Tasks of this tenant among task_ids, by id (form filling's library)."""
        if not task_ids:
            return {}
        statement = self.q.COMPLETED_RESULTS.replace("{marks}", ",".join("?" * len(task_ids)))
        return {r["id"]: r for r in self.database.read(statement, (tenant, *task_ids))}

    def stats(self, tenant: str | None) -> dict:
        """Counts by status and type, and mean wait and run times, for one tenant or all."""
        args = (tenant,) if tenant is not None else ()
        counts: dict = {}
        where = "WHERE tenant = ?" if tenant is not None else ""
        for r in self.database.read(self.q.STATS_COUNTS.replace("{where}", where), args):
            counts.setdefault(r["type"], {})[r["status"]] = int(r["n"])
        cond = "tenant = ? AND" if tenant is not None else ""
        times = self._one(self.q.STATS_TIMES.replace("{tenant_cond}", cond), *args)
        return {"counts": counts, "mean_wait_seconds": times["wait"], "mean_run_seconds": times["run"]}

    # -- the attempt's transitions ------------------------------------------------------
    def claim_task(self, task_id: str, claim: str, now: float, deadline: float, lease_until: float):
        """pending (due) -> processing for this claim token, or a hand-off claimed; None when not claimable."""
        rows = self.database.write(self.q.CLAIM, (claim, lease_until, now, deadline, now, task_id, now)).rows
        return rows[0] if rows else None

    def record_progress(self, task_id: str, claim: str, progress: float, stage: str, now: float,
                        lease_until: float) -> bool | None:
        """Write progress and renew the lease; cancel_requested, or None when the attempt lost the task."""
        progress = min(max(progress, 0.0), 1.0)
        rows = self.database.write(self.q.PROGRESS, (progress, progress, stage, now, lease_until, task_id, claim)).rows
        return None if not rows else bool(rows[0]["cancel_requested"])

    def keep_page(self, task_id: str, claim: str, index: int, page: dict) -> bool:
        """Keep one page's OCR for a later attempt; False when the attempt lost the task."""
        args = (task_id, index, jsonio.dumps(page), task_id, claim)
        return self.database.write(self.q.KEEP_PAGE, args).rowcount == 1

    def kept_pages(self, task_id: str) -> dict[int, dict]:
        """The pages earlier attempts read, by index."""
        return {int(r["idx"]): jsonio.loads(r["data"]) for r in self.database.read(self.q.KEPT_PAGES, (task_id,))}

    def hand_off(self, task_id: str, claim: str, phase: str, stage: str, now: float) -> bool:
        """Give up the claim between two steps; the row stays processing until the next step claims it."""
        return self.database.write(self.q.HAND_OFF, (phase, stage, now, now, task_id, claim)).rowcount == 1

    def retry_later(self, task_id: str, claim: str, stage: str, message: str, now: float, not_before: float,
                    phase: str) -> bool:
        """processing -> pending until not_before, with an error entry; False on a lost race or a cancel."""
        args = (error_entry(now, stage, message), now, not_before, not_before, phase, task_id, claim)
        return self.database.write(self.q.RETRY_LATER, args).rowcount == 1

    def release_task(self, task_id: str, claim: str, now: float) -> bool:
        """processing -> pending at shutdown; False on a lost race or when a cancel was asked for."""
        entry = error_entry(now, "shutdown", "the worker stopped before the task finished; it will run again")
        return self.database.write(self.q.RELEASE, (entry, now, now, task_id, claim)).rowcount == 1

    def extend_leases(self, claims: dict[str, str], lease_until: float) -> int:
        """Renew the lease of every attempt this process runs ({task id: claim})."""
        if not claims:
            return 0
        return self.database.write_many(self.q.EXTEND_LEASE, [(lease_until, t, c) for t, c in claims.items()])

    def request_cancel(self, task_id: str, tenant: str, now: float) -> bool:
        """Flag a running task; its attempt stops at the next page or stage."""
        return self.database.write(self.q.REQUEST_CANCEL, (now, task_id, tenant)).rowcount == 1

    def finish_task(self, task_id: str, status: TaskStatus, guard: Guard, now: float, *, stage: str,
                    result: dict | None = None, error: tuple[str, str] | None = None):
        """The one statement that writes a terminal status; the row as ended, or None when the guard lost."""
        assert status.is_terminal
        statement = self.q.FINISH.replace("{guard}", sql.FINISH_GUARDS[guard.kind])
        args = [status.value, None if result is None else jsonio.dumps(result), status.value, stage, now, now,
                status.value]
        if error is not None:
            statement = statement.replace("{errors}", ", errors = " + self.dialect.append_error)
            args.append(error_entry(now, *error))
        else:
            statement = statement.replace("{errors}", "")
        args += [task_id, guard.value]
        with self.database.transaction() as tx:
            rows = tx.execute(statement, tuple(args)).rows
            if rows:
                tx.execute(self.q.DROP_PAGES, (task_id,))
        return rows[0] if rows else None

    # -- the janitor ----------------------------------------------------------------------
    def past_deadline(self, now: float) -> list[str]:
        return [r["id"] for r in self.database.read(self.q.PAST_DEADLINE, (now,))]

    def lease_expired(self, now: float) -> list:
        """Held tasks whose holder stopped renewing the lease: (id, resumes, cancel_requested) rows."""
        return self.database.read(self.q.LEASE_EXPIRED, (now,))

    def requeue_expired(self, task_id: str, now: float, lease_cutoff: float, max_resumes: int):
        """processing (lease expired) -> pending, counting a resume; the row (id, priority, phase) or None."""
        entry = error_entry(now, "recovery", "the worker running this task stopped while it ran; resumed")
        rows = self.database.write(self.q.REQUEUE_EXPIRED, (entry, now, now, task_id, lease_cutoff, max_resumes)).rows
        return rows[0] if rows else None

    def undispatched(self, now: float, sent_before: float, limit: int = 1000) -> list:
        """Due waiting tasks (and hand-offs) not sent to a queue since sent_before."""
        return self.database.read(self.q.UNDISPATCHED, (now, sent_before, limit))

    def mark_dispatched(self, task_ids: list[str], now: float) -> None:
        self.database.write_many(self.q.MARK_DISPATCHED, [(now, t) for t in task_ids])

    def pending_tasks(self) -> list:
        """Every pending task, for rebuilding an in-memory queue."""
        return self.database.read(self.q.PENDING_TASKS, ())

    # -- retention ---------------------------------------------------------------------
    def purgeable_files(self, cutoff: float) -> tuple[list[str], list[str]]:
        """(task ids whose files may go, hashes no live or recent task still reads)."""
        tasks = [r["id"] for r in self.database.read(self.q.PURGEABLE_TASKS, (cutoff,))]
        hashes = [r["sha256"] for r in self.database.read(self.q.PURGEABLE_HASHES, (cutoff, cutoff))]
        return tasks, hashes

    def mark_files_purged(self, task_ids: list[str]) -> None:
        self.database.write_many(self.q.MARK_FILES_PURGED, [(t,) for t in task_ids])

    def delete_finished_tasks(self, cutoff: float) -> int:
        """Delete finished tasks older than cutoff (their files list and pages go with them)."""
        with self.database.transaction() as tx:
            n = tx.execute(self.q.DELETE_FINISHED, (cutoff,)).rowcount
            tx.execute(self.q.DELETE_EMPTY_BATCHES, ())
        return n

    def file_is_referenced(self, sha256: str) -> bool:
        """Whether any task row still names this file."""
        return self._one(self.q.FILE_REFERENCED, sha256) is not None

    def file_needed_since(self, sha256: str, cutoff: float) -> bool:
        """Whether a live task, or one finished after cutoff, reads this file."""
        return self._one(self.q.FILE_NEEDED_SINCE, sha256, cutoff) is not None

    # -- webhooks ----------------------------------------------------------------------
    def record_webhook_attempt(self, task_id: str, url: str, attempt: int, status_code: int | None,
                               error: str | None, delivered: bool, now: float) -> None:
        """One delivery attempt of a task's callback; ignored when the task is gone."""
        self.database.write(self.q.RECORD_WEBHOOK,
                            (task_id, url, attempt, status_code, error, int(delivered), now, task_id))

    def webhook_attempts(self, task_id: str) -> list:
        """Every delivery attempt of this task's callback, oldest first."""
        return self.database.read(self.q.WEBHOOK_ATTEMPTS, (task_id,))

    def webhooks_to_resume(self, since: float, max_attempts: int) -> list:
        """Tasks finished since `since` with a callback neither delivered nor given up on."""
        return self.database.read(self.q.WEBHOOKS_TO_RESUME, (since, max_attempts))

    # -- API keys and tenants (auth) ---------------------------------------------------
    def insert_api_key(self, prefix: str, tenant: str, key_hash: str, now: float) -> bool:
        """Store a new key's hash; False when the prefix is already taken."""
        return self.database.write(self.q.INSERT_API_KEY, (prefix, tenant, key_hash, now)).rowcount == 1

    def api_key(self, prefix: str):
        """The key row with this public prefix (revoked or not)."""
        return self._one(self.q.GET_API_KEY, prefix)

    def has_active_api_keys(self) -> bool:
        return self._one(self.q.HAS_ACTIVE_KEYS) is not None

    def list_api_keys(self) -> list:
        """Every key without its hash, oldest first."""
        return self.database.read(self.q.LIST_API_KEYS, ())

    def revoke_api_key(self, prefix: str, now: float) -> bool:
        """active -> revoked; False when there is no active key with this prefix."""
        return self.database.write(self.q.REVOKE_API_KEY, (now, prefix)).rowcount == 1

    def touch_api_key(self, prefix: str, now: float) -> None:
        self.database.write(self.q.TOUCH_API_KEY, (now, prefix))

    def tenant_secret(self, tenant: str, new_secret: str, now: float) -> str:
        """The tenant's webhook secret; new_secret is stored first if the tenant has none yet."""
        row = self._one(self.q.GET_TENANT_SECRET, tenant)
        if row is None:
            # A racing first use loses quietly and both read the one stored secret.
            self.database.write(self.q.INSERT_TENANT, (tenant, new_secret, now))
            row = self._one(self.q.GET_TENANT_SECRET, tenant)
        return row["webhook_secret"]

    # -- the distributed mode only (PostgreSQL) ------------------------------------------------
    def take_token(self, key: str, rate: float, burst: int, now: float) -> float:
        """Spend one token of key's shared bucket: 0 when allowed, else the seconds until one is back."""
        row = self.database.write(self.q.TAKE_TOKEN, (key, float(burst) - 1, now, rate, rate, rate)).rows[0]
        return 0.0 if row["ok"] else (1.0 - row["tokens"]) / rate

    def heartbeat(self, name: str, queues: str, concurrency: int, ocr_slots: int, busy: int,
                  started_at: float, now: float) -> None:
        """A worker process says it is alive (and how busy it is)."""
        self.database.write(self.q.UPSERT_WORKER, (name, queues, concurrency, ocr_slots, busy, started_at, now))

    def forget_worker(self, name: str) -> None:
        self.database.write(self.q.DELETE_WORKER, (name,))

    def workers_seen_since(self, since: float) -> list:
        return self.database.read(self.q.WORKERS_SEEN_SINCE, (since,))

    def forget_workers_before(self, cutoff: float) -> None:
        self.database.write(self.q.FORGET_WORKERS, (cutoff,))
