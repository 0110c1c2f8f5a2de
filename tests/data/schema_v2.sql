-- The one schema of docproc. Applied at every start; every statement is idempotent.
-- Times are Unix seconds (REAL); JSON columns hold text that json() accepts.

CREATE TABLE IF NOT EXISTS tasks (
    id               TEXT PRIMARY KEY,                 -- UUID4
    tenant           TEXT NOT NULL,
    type             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 9),
    progress         REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    stage            TEXT NOT NULL DEFAULT 'queued',
    attempts         INTEGER NOT NULL DEFAULT 0,
    resumes          INTEGER NOT NULL DEFAULT 0,
    errors           TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(errors)),
    input            TEXT NOT NULL CHECK (json_valid(input)),
    result           TEXT CHECK (result IS NULL OR json_valid(result)),
    ocr_pages        TEXT CHECK (ocr_pages IS NULL OR json_valid(ocr_pages)),  -- kept for a retry

    content_hash     TEXT,                             -- files + type + options + extractor
    batch_id         TEXT,
    claim            TEXT,                             -- token of the attempt that owns the row
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    not_before       REAL,                             -- a retry waits until then
    deadline         REAL,                             -- the running attempt must end by then
    files_purged     INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    started_at       REAL,
    completed_at     REAL
);
CREATE INDEX IF NOT EXISTS tasks_by_tenant ON tasks (tenant, type, status);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, priority DESC);
-- completed_at in the key: the newest cache hit is one index probe, not a scan of every duplicate.
DROP INDEX IF EXISTS tasks_by_hash;
CREATE INDEX IF NOT EXISTS tasks_by_hash_newest ON tasks (tenant, content_hash, completed_at) WHERE status = 'completed';
CREATE INDEX IF NOT EXISTS tasks_by_batch ON tasks (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_by_completion ON tasks (completed_at) WHERE completed_at IS NOT NULL;

-- Which stored files a task reads: retention never deletes a file a live task needs.
CREATE TABLE IF NOT EXISTS task_files (
    task_id   TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    sha256    TEXT NOT NULL,
    PRIMARY KEY (task_id, position)
);
CREATE INDEX IF NOT EXISTS task_files_by_sha ON task_files (sha256);
-- Filled from the task's own input, so that storing a task is one INSERT: one statement is one
-- transaction, and the service's write lock is held for a single call into SQLite.
CREATE TRIGGER IF NOT EXISTS task_files_from_input AFTER INSERT ON tasks BEGIN
    INSERT INTO task_files (task_id, position, sha256)
    SELECT new.id, key, json_extract(value, '$.sha256') FROM json_each(new.input, '$.files');
END;

CREATE TABLE IF NOT EXISTS batches (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    type        TEXT NOT NULL,
    created_at  REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS tenants (
    name            TEXT PRIMARY KEY,
    webhook_secret  TEXT NOT NULL,
    created_at      REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    prefix        TEXT PRIMARY KEY,                    -- public, shown in listings
    tenant        TEXT NOT NULL,
    key_hash      TEXT NOT NULL,                       -- sha256 of the whole key
    created_at    REAL NOT NULL,
    revoked_at    REAL,
    last_used_at  REAL
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id           INTEGER PRIMARY KEY,
    task_id      TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    url          TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    delivered    INTEGER NOT NULL DEFAULT 0,
    at           REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_task ON webhook_deliveries (task_id);

PRAGMA user_version = 2;
