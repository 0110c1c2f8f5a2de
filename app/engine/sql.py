"""Every SQL statement of the task store, written once for SQLite and PostgreSQL.

Where the two dialects differ, a statement names a fragment in braces ({seq}, {append_error},
{admission_lock}) and `Dialect` fills it in once at start. Values are always parameters, written
`?`; the PostgreSQL database object turns them into its own placeholders.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """The few places where SQLite and PostgreSQL need different SQL."""

    name: str
    seq: str  # the insertion-order column (cursor pagination)
    # `errors` with the JSON object of the parameter appended; its "attempt" is the row's attempts.
    append_error: str
    # Taken inside the transaction that checks the pending caps and inserts (None: writers are serialised already).
    admission_lock: str | None

    def render(self, sql: str) -> str:
        return sql.replace("{seq}", self.seq).replace("{append_error}", self.append_error)


SQLITE = Dialect(
    name="sqlite",
    seq="rowid",
    append_error="json_insert(errors, '$[#]', json_set(?, '$.attempt', attempts))",
    admission_lock=None,  # BEGIN IMMEDIATE: one writer at a time
)

POSTGRES = Dialect(
    name="postgres",
    seq="seq",
    append_error="(errors::jsonb || jsonb_build_array(jsonb_set(?::jsonb, '{attempt}', to_jsonb(attempts))))::text",
    # READ COMMITTED lets two inserts both see room under the cap: admission takes turns on one lock.
    admission_lock="SELECT pg_advisory_xact_lock(730114)",
)

LIVE = "('pending', 'processing')"
FINISHED = "('completed', 'failed', 'cancelled')"

# -- intake ----------------------------------------------------------------------------------
# The row goes in only while the pending counts stay within the caps (the first `?` turns the check off).
INSERT_TASK = (
    "INSERT INTO tasks (id, tenant, type, status, priority, progress, stage, input, result, content_hash,"
    " batch_id, callback_url, created_at, updated_at, started_at, completed_at, dispatched_at)"
    " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
    f" WHERE ? = 1 OR ((SELECT count(*) FROM tasks WHERE status IN {LIVE}) <= ?"
    f" AND (SELECT count(*) FROM tasks WHERE tenant = ? AND status IN {LIVE}) <= ?)"
    " RETURNING *"
)
INSERT_BATCH = "INSERT INTO batches (id, tenant, type, created_at) VALUES (?, ?, ?, ?)"
CACHED_RESULT = (
    "SELECT result FROM tasks WHERE tenant = ? AND content_hash = ? AND status = 'completed'"
    " ORDER BY completed_at DESC LIMIT 1"
)
SAME_WORK = (  # the tasks whose result a cached one copied: the ones that did the work
    "SELECT id FROM tasks WHERE tenant = ? AND content_hash = ? AND status = 'completed' AND files_purged = 0"
    " ORDER BY completed_at DESC LIMIT 20"
)
PENDING_COUNTS = (
    "SELECT count(*) AS total, coalesce(sum(CASE WHEN tenant = ? THEN 1 ELSE 0 END), 0) AS mine"
    f" FROM tasks WHERE status IN {LIVE}"
)

# -- reads -----------------------------------------------------------------------------------
GET_TASK = "SELECT * FROM tasks WHERE id = ?"
GET_TENANT_TASK = "SELECT * FROM tasks WHERE id = ? AND tenant = ?"
LIST_TASKS = "SELECT {seq} AS cursor_seq, * FROM tasks WHERE {where} ORDER BY {seq} DESC LIMIT ?"
GET_BATCH = "SELECT * FROM batches WHERE id = ? AND tenant = ?"
BATCH_TASKS = "SELECT * FROM tasks WHERE batch_id = ? AND tenant = ? ORDER BY {seq}"
COMPLETED_RESULTS = "SELECT id, type, status, result FROM tasks WHERE tenant = ? AND id IN ({marks})"
STATS_COUNTS = "SELECT type, status, count(*) AS n FROM tasks {where} GROUP BY type, status"
STATS_TIMES = (
    "SELECT avg(started_at - created_at) AS wait, avg(completed_at - started_at) AS run FROM tasks"
    " WHERE {tenant_cond} status = 'completed' AND started_at IS NOT NULL"
)

# -- the attempt's transitions: each one guarded statement --------------------------------------
# pending (due, not cancelled) -> processing; or, between two steps, the hand-off -> claimed again.
CLAIM = (
    "UPDATE tasks SET status = 'processing', claim = ?, lease_until = ?, updated_at = ?,"
    " attempts = attempts + CASE WHEN status = 'pending' THEN 1 ELSE 0 END,"
    " deadline = CASE WHEN status = 'pending' THEN ? ELSE deadline END,"
    " started_at = coalesce(started_at, ?), not_before = NULL, stage = 'starting'"
    " WHERE id = ? AND cancel_requested = 0 AND ("
    "   (status = 'pending' AND (not_before IS NULL OR not_before <= ?))"
    "   OR (status = 'processing' AND claim IS NULL))"
    " RETURNING *"
)
PROGRESS = (
    "UPDATE tasks SET progress = CASE WHEN progress > ? THEN progress ELSE ? END, stage = ?,"
    " updated_at = ?, lease_until = ?"
    " WHERE id = ? AND claim = ? AND status = 'processing' RETURNING cancel_requested"
)
KEEP_PAGE = (
    "INSERT INTO task_pages (task_id, idx, data) SELECT ?, ?, ?"
    " WHERE EXISTS (SELECT 1 FROM tasks WHERE id = ? AND claim = ? AND status = 'processing')"
    " ON CONFLICT (task_id, idx) DO UPDATE SET data = excluded.data"
)
KEPT_PAGES = "SELECT idx, data FROM task_pages WHERE task_id = ? ORDER BY idx"
DROP_PAGES = "DELETE FROM task_pages WHERE task_id = ?"
# The first step is done: the row waits, unclaimed, for the step of the next queue.
HAND_OFF = (
    "UPDATE tasks SET claim = NULL, lease_until = NULL, phase = ?, stage = ?, updated_at = ?, dispatched_at = ?"
    " WHERE id = ? AND claim = ? AND status = 'processing'"
)
RETRY_LATER = (
    "UPDATE tasks SET status = 'pending', errors = {append_error}, updated_at = ?, not_before = ?,"
    " dispatched_at = ?, claim = NULL, lease_until = NULL, phase = ?, stage = 'retry scheduled'"
    " WHERE id = ? AND claim = ? AND status = 'processing' AND cancel_requested = 0"
)
# Shutdown: the attempt gives the task back; the next start (or another worker) runs it again.
RELEASE = (
    "UPDATE tasks SET status = 'pending', errors = {append_error}, updated_at = ?, dispatched_at = ?,"
    " claim = NULL, lease_until = NULL, stage = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END"
    " WHERE id = ? AND claim = ? AND status = 'processing' AND cancel_requested = 0"
)
EXTEND_LEASE = "UPDATE tasks SET lease_until = ? WHERE id = ? AND claim = ? AND status = 'processing'"
REQUEST_CANCEL = (
    "UPDATE tasks SET cancel_requested = 1, updated_at = ?"
    " WHERE id = ? AND tenant = ? AND status = 'processing' AND claim IS NOT NULL"
)

# -- endings: the one statement that writes a terminal status (see lifecycle.finish) ----------------
FINISH = (
    "UPDATE tasks SET status = ?, result = coalesce(?, result),"
    " progress = CASE WHEN ? = 'completed' THEN 1 ELSE progress END, stage = coalesce(?, stage), updated_at = ?,"
    " completed_at = ?, claim = NULL, lease_until = NULL,"
    " cancel_requested = CASE WHEN ? = 'cancelled' THEN 1 ELSE cancel_requested END{errors}"
    " WHERE id = ? AND {guard} RETURNING *"
)
FINISH_GUARDS = {
    # The attempt holding this claim token.
    "attempt": "claim = ? AND status = 'processing'",
    # A client cancelling a task that no attempt holds: waiting, or between two steps.
    "client": "tenant = ? AND (status = 'pending' OR (status = 'processing' AND claim IS NULL))",
    # The janitor: the attempt passed its deadline.
    "deadline": "status = 'processing' AND deadline < ?",
    # The janitor, or a start-up: the attempt's holder stopped renewing its lease.
    "lease": "status = 'processing' AND claim IS NOT NULL AND coalesce(lease_until, 0) < ?",
}

# -- the janitor ------------------------------------------------------------------------------
PAST_DEADLINE = "SELECT id FROM tasks WHERE status = 'processing' AND deadline < ?"
LEASE_EXPIRED = (
    "SELECT id, resumes, cancel_requested FROM tasks"
    " WHERE status = 'processing' AND claim IS NOT NULL AND coalesce(lease_until, 0) < ?"
)
# A held task whose holder vanished goes back to waiting (the lost attempt still counts).
REQUEUE_EXPIRED = (
    "UPDATE tasks SET status = 'pending', errors = {append_error}, updated_at = ?, dispatched_at = ?,"
    " claim = NULL, lease_until = NULL, resumes = resumes + 1, stage = 'queued'"
    " WHERE id = ? AND status = 'processing' AND claim IS NOT NULL AND coalesce(lease_until, 0) < ?"
    " AND cancel_requested = 0 AND resumes < ? RETURNING id, priority, phase"
)
# Waiting tasks whose queue entry may be lost: due, and not (re)sent since `?`.
UNDISPATCHED = (
    "SELECT id, priority, phase, not_before FROM tasks WHERE ((status = 'pending'"
    " AND (not_before IS NULL OR not_before <= ?)) OR (status = 'processing' AND claim IS NULL))"
    " AND (dispatched_at IS NULL OR dispatched_at < ?) ORDER BY priority DESC, {seq} LIMIT ?"
)
MARK_DISPATCHED = "UPDATE tasks SET dispatched_at = ? WHERE id = ? AND status IN ('pending', 'processing')"
PENDING_TASKS = "SELECT id, priority, phase, not_before FROM tasks WHERE status = 'pending' ORDER BY priority DESC, {seq}"

# -- retention --------------------------------------------------------------------------------
PURGEABLE_TASKS = f"SELECT id FROM tasks WHERE status IN {FINISHED} AND files_purged = 0 AND completed_at < ?"
PURGEABLE_HASHES = (
    "SELECT DISTINCT tf.sha256 FROM task_files tf JOIN tasks t ON t.id = tf.task_id"
    f" WHERE t.files_purged = 0 AND t.status IN {FINISHED} AND t.completed_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM task_files tf2 JOIN tasks t2 ON t2.id = tf2.task_id"
    f"   WHERE tf2.sha256 = tf.sha256 AND (t2.status IN {LIVE} OR t2.completed_at >= ?))"
)
MARK_FILES_PURGED = "UPDATE tasks SET files_purged = 1 WHERE id = ?"
DELETE_FINISHED = f"DELETE FROM tasks WHERE status IN {FINISHED} AND completed_at < ?"
DELETE_EMPTY_BATCHES = "DELETE FROM batches WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE batch_id = batches.id)"
FILE_REFERENCED = (
    "SELECT 1 AS found FROM task_files tf JOIN tasks t ON t.id = tf.task_id"
    " WHERE tf.sha256 = ? AND t.files_purged = 0 LIMIT 1"
)
FILE_NEEDED_SINCE = (
    "SELECT 1 AS found FROM task_files tf JOIN tasks t ON t.id = tf.task_id WHERE tf.sha256 = ?"
    f" AND (t.status IN {LIVE} OR t.completed_at >= ?) LIMIT 1"
)

# -- webhooks ---------------------------------------------------------------------------------
RECORD_WEBHOOK = (
    "INSERT INTO webhook_deliveries (task_id, url, attempt, status_code, error, delivered, at)"
    " SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM tasks WHERE id = ?)"
)
WEBHOOK_ATTEMPTS = (
    "SELECT attempt, status_code, error, delivered, at FROM webhook_deliveries WHERE task_id = ? ORDER BY id"
)
WEBHOOKS_TO_RESUME = (
    "SELECT t.*, coalesce(d.last_attempt, 0) AS last_attempt, d.last_at FROM tasks t"
    " LEFT JOIN (SELECT task_id, max(attempt) AS last_attempt, max(delivered) AS delivered, max(at) AS last_at"
    "   FROM webhook_deliveries GROUP BY task_id) d ON d.task_id = t.id"
    f" WHERE t.completed_at >= ? AND t.status IN {FINISHED} AND t.callback_url IS NOT NULL"
    " AND coalesce(d.delivered, 0) = 0 AND coalesce(d.last_attempt, 0) < ?"
)

# -- API keys and tenants -----------------------------------------------------------------------
INSERT_API_KEY = (
    "INSERT INTO api_keys (prefix, tenant, key_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (prefix) DO NOTHING"
)
GET_API_KEY = "SELECT prefix, tenant, key_hash, revoked_at, last_used_at FROM api_keys WHERE prefix = ?"
HAS_ACTIVE_KEYS = "SELECT 1 AS found FROM api_keys WHERE revoked_at IS NULL LIMIT 1"
LIST_API_KEYS = "SELECT prefix, tenant, created_at, revoked_at, last_used_at FROM api_keys ORDER BY created_at, prefix"
REVOKE_API_KEY = "UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL"
TOUCH_API_KEY = "UPDATE api_keys SET last_used_at = ? WHERE prefix = ?"
GET_TENANT_SECRET = "SELECT webhook_secret FROM tenants WHERE name = ?"
INSERT_TENANT = (
    "INSERT INTO tenants (name, webhook_secret, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING"
)

# -- the distributed mode only (tables in schema.postgres.sql) ------------------------------------
# One token bucket per key shared by every API process: refill by the time passed (capped at the
# burst, which the inserted row carries as tokens + 1), then take a token if there is one; `ok`
# says whether it was taken. Parameters: key, burst - 1, now, then the rate three times.
_REFILL = "least(excluded.tokens + 1, b.tokens + greatest(excluded.at - b.at, 0) * ?)"
TAKE_TOKEN = (
    "INSERT INTO rate_buckets AS b (key, tokens, at, ok) VALUES (?, ?, ?, 1)"
    f" ON CONFLICT (key) DO UPDATE SET tokens = {_REFILL} - CASE WHEN {_REFILL} >= 1 THEN 1 ELSE 0 END,"
    f" ok = CASE WHEN {_REFILL} >= 1 THEN 1 ELSE 0 END, at = excluded.at"
    " RETURNING tokens, ok"
)
UPSERT_WORKER = (
    "INSERT INTO workers (name, queues, concurrency, ocr_slots, busy, started_at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET busy = excluded.busy, seen_at = excluded.seen_at"
)
DELETE_WORKER = "DELETE FROM workers WHERE name = ?"
WORKERS_SEEN_SINCE = "SELECT name, queues, concurrency, ocr_slots, busy, started_at, seen_at FROM workers WHERE seen_at >= ?"
FORGET_WORKERS = "DELETE FROM workers WHERE seen_at < ?"
