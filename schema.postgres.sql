-- The schema of docproc on PostgreSQL (the distributed mode): the twin of schema.sql, column for
-- column, with the same CHECKs. Applied at every start after the migrations in migrations/postgres/
-- have brought an older database up to date; every statement is idempotent.
-- Times are Unix seconds (double precision); JSON columns hold text that ::jsonb accepts (the
-- store reads and writes JSON as text on both backends).

CREATE TABLE IF NOT EXISTS tasks (
    id               TEXT PRIMARY KEY,                 -- UUID4
    seq              BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,  -- insertion order (SQLite's rowid): cursors
    tenant           TEXT NOT NULL,
    type             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    phase            TEXT NOT NULL DEFAULT 'ocr' CHECK (phase IN ('ocr', 'extract')),
    priority         INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 9),
    progress         DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    stage            TEXT NOT NULL DEFAULT 'queued',
    attempts         INTEGER NOT NULL DEFAULT 0,
    resumes          INTEGER NOT NULL DEFAULT 0,
    errors           TEXT NOT NULL DEFAULT '[]' CHECK (errors::jsonb IS NOT NULL),
    input            TEXT NOT NULL CHECK (input::jsonb IS NOT NULL),
    result           TEXT CHECK (result IS NULL OR result::jsonb IS NOT NULL),

    content_hash     TEXT,
    batch_id         TEXT,
    callback_url     TEXT,
    claim            TEXT,
    lease_until      DOUBLE PRECISION,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    not_before       DOUBLE PRECISION,
    deadline         DOUBLE PRECISION,
    dispatched_at    DOUBLE PRECISION,
    files_purged     INTEGER NOT NULL DEFAULT 0,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL,
    started_at       DOUBLE PRECISION,
    completed_at     DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS tasks_by_tenant ON tasks (tenant, type, status);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, priority DESC);
CREATE INDEX IF NOT EXISTS tasks_by_hash_newest ON tasks (tenant, content_hash, completed_at) WHERE status = 'completed';
CREATE INDEX IF NOT EXISTS tasks_by_batch ON tasks (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_by_completion ON tasks (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_by_lease ON tasks (lease_until) WHERE status = 'processing';
CREATE INDEX IF NOT EXISTS tasks_by_tenant_seq ON tasks (tenant, seq);

CREATE TABLE IF NOT EXISTS task_files (
    task_id   TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    sha256    TEXT NOT NULL,
    PRIMARY KEY (task_id, position)
);
CREATE INDEX IF NOT EXISTS task_files_by_sha ON task_files (sha256);
-- Filled from the task's own input, so that storing a task is one INSERT.
CREATE OR REPLACE FUNCTION task_files_from_input() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_files (task_id, position, sha256)
    SELECT NEW.id, f.ord - 1, f.value ->> 'sha256'
    FROM jsonb_array_elements(coalesce(NEW.input::jsonb -> 'files', '[]'::jsonb)) WITH ORDINALITY AS f (value, ord);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER task_files_from_input AFTER INSERT ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_files_from_input();

CREATE TABLE IF NOT EXISTS task_pages (
    task_id   TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    idx       INTEGER NOT NULL,
    data      TEXT NOT NULL CHECK (data::jsonb IS NOT NULL),
    PRIMARY KEY (task_id, idx)
);

CREATE TABLE IF NOT EXISTS batches (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    type        TEXT NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS tenants (
    name            TEXT PRIMARY KEY,
    webhook_secret  TEXT NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    prefix        TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    key_hash      TEXT NOT NULL,
    created_at    DOUBLE PRECISION NOT NULL,
    revoked_at    DOUBLE PRECISION,
    last_used_at  DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id      TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    url          TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    delivered    INTEGER NOT NULL DEFAULT 0,
    at           DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_task ON webhook_deliveries (task_id);

-- Only the distributed mode has these: several API processes share one rate limit per key, and
-- each worker process says it is alive (health, stats).
CREATE TABLE IF NOT EXISTS rate_buckets (
    key     TEXT PRIMARY KEY,
    tokens  DOUBLE PRECISION NOT NULL,
    at      DOUBLE PRECISION NOT NULL,
    ok      INTEGER NOT NULL DEFAULT 1                 -- whether the last request took a token
);

CREATE TABLE IF NOT EXISTS workers (
    name         TEXT PRIMARY KEY,                     -- celery node name, e.g. docproc@host:pid
    queues       TEXT NOT NULL,
    concurrency  INTEGER NOT NULL,
    ocr_slots    INTEGER NOT NULL,
    busy         INTEGER NOT NULL DEFAULT 0,
    started_at   DOUBLE PRECISION NOT NULL,
    seen_at      DOUBLE PRECISION NOT NULL
);
