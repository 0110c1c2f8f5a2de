"""The embedded mode's database: one SQLite file (stdlib sqlite3), WAL, one connection per thread.

One rule for every write: it runs under this process's write lock, either as one autocommit
statement or inside `transaction()` (BEGIN IMMEDIATE). SQLite's own busy handler sleeps 1-100 ms
between tries, so writers of this process queue on the lock instead; other processes (the CLI's
`keys` commands) still meet the busy timeout. Faults of the file or the disk come out as
StorageBusy / StorageFull / StorageError, and the last one is kept for health until a write
succeeds again.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import StorageBusy, StorageError, StorageFull
from .sql import SQLITE

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMA_PATH = ROOT / "schema.sql"
MIGRATIONS = ROOT / "migrations" / "sqlite"
SCHEMA_VERSION = 3


class Result:
    """What a statement gave back: its rows (RETURNING or SELECT) and how many rows it changed."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list, rowcount: int):
        self.rows = rows
        self.rowcount = rowcount


def translate(exc: sqlite3.Error) -> StorageError | None:
    """A storage fault as the engine's exception, or None for a fault of the statement itself."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return StorageBusy(f"the database is busy: {text}")
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return StorageFull(f"the disk is full: {text}")
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PROTOCOL")) or "disk I/O error" in text:
        return StorageError(f"the database cannot be written: {text}")
    return None


class _Tx:
    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, statement: str, args=()) -> Result:
        cur = self.conn.execute(statement, args)
        rows = cur.fetchall()  # stepped to the end: the statement's changes are complete
        return Result(rows, cur.rowcount)


class SqliteDatabase:
    """Owns the SQLite file: connections, the write rule, the schema and its migrations."""

    dialect = SQLITE

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 10000, clock=time.time):
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.clock = clock
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()  # re-entrant: a nested BEGIN fails in SQLite, not here
        self.fault: dict | None = None

    # -- connections -------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=self.busy_timeout_ms / 1000)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

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

    # -- statements ----------------------------------------------------------------------
    def _failed(self, exc: sqlite3.Error):
        storage = translate(exc)
        if storage is None:
            return exc
        self.fault = {"at": self.clock(), "error": storage.message}
        return storage

    def _ok(self) -> None:
        if self.fault is not None:
            logger.info("storage writes succeed again after: %s", self.fault["error"])
            self.fault = None

    def read(self, statement: str, args=()) -> list:
        try:
            return self.connection().execute(statement, args).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def write(self, statement: str, args=()) -> Result:
        """One statement in autocommit, under the write lock."""
        try:
            with self._write_lock:
                result = _Tx(self.connection()).execute(statement, args)
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        self._ok()
        return result

    def write_many(self, statement: str, rows: list[tuple]) -> int:
        """One statement for many parameter rows, in one transaction."""
        if not rows:
            return 0
        with self.transaction() as tx:
            cur = tx.conn.executemany(statement, rows)
            return cur.rowcount

    @contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT under the write lock, or ROLLBACK and re-raise."""
        conn = self.connection()
        try:
            with self._write_lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield _Tx(conn)
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise self._failed(exc) from exc
        self._ok()

    @contextmanager
    def exclusive(self, name: str):
        """The embedded process holds the data directory's lock: it is always the only one."""
        yield True

    # -- schema ------------------------------------------------------------------------
    def init_schema(self) -> None:
        """Bring an older file up to date with migrations/sqlite/, then apply schema.sql."""
        conn = self.connection()
        with self._write_lock:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"database schema version {version} is newer than this docproc ({SCHEMA_VERSION})")
            has_tasks = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'tasks'").fetchone() is not None
            if has_tasks and version < SCHEMA_VERSION:
                for step in range(max(version, 2) + 1, SCHEMA_VERSION + 1):
                    for path in sorted(MIGRATIONS.glob(f"{step:03d}_*.sql")):
                        logger.info("migrating the database to version %d (%s)", step, path.name)
                        try:
                            conn.executescript(f"BEGIN IMMEDIATE;\n{path.read_text()}\nPRAGMA user_version = {step};\nCOMMIT;")
                        except BaseException:
                            if conn.in_transaction:
                                conn.execute("ROLLBACK")
                            raise
            conn.executescript(SCHEMA_PATH.read_text())
