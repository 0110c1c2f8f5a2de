-- Version 2 -> 3: leases instead of reset-at-start, two steps (OCR, extraction), one row per kept page.
ALTER TABLE tasks ADD COLUMN phase TEXT NOT NULL DEFAULT 'ocr' CHECK (phase IN ('ocr', 'extract'));
ALTER TABLE tasks ADD COLUMN lease_until REAL;
ALTER TABLE tasks ADD COLUMN callback_url TEXT;
ALTER TABLE tasks ADD COLUMN dispatched_at REAL;
UPDATE tasks SET callback_url = json_extract(input, '$.options.callback_url');
-- A task left processing was held by a process that is gone: its lease is long over.
UPDATE tasks SET lease_until = 0 WHERE status = 'processing';
CREATE TABLE task_pages (
    task_id   TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    idx       INTEGER NOT NULL,
    data      TEXT NOT NULL CHECK (json_valid(data)),
    PRIMARY KEY (task_id, idx)
);
INSERT INTO task_pages (task_id, idx, data)
    SELECT t.id, p.key, p.value FROM tasks t, json_each(t.ocr_pages) p WHERE t.ocr_pages IS NOT NULL;
UPDATE tasks SET phase = 'extract' WHERE ocr_pages IS NOT NULL;
ALTER TABLE tasks DROP COLUMN ocr_pages;
