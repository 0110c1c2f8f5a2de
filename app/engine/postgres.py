"""The distributed mode's database: PostgreSQL through psycopg 3 and a psycopg_pool connection pool.

Statements come from sql.py written with `?`; they are turned into psycopg's `%s` once each (a
literal `%` doubled first). Single statements run in autocommit; `transaction()` is one
READ COMMITTED transaction on one pooled connection. Faults of the server or the connection come
out as StorageBusy / StorageFull / StorageError, like SQLite's, and the last one is kept for health.
`exclusive(name)` is a session advisory lock, so one janitor round runs at a time across processes.
"""
from __future__ import annotations

import logging
import re
import threading
import time
import zlib
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import psycopg
from psycopg import errors as pgerrors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import StorageBusy, StorageError, StorageFull
from .sql import POSTGRES

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMA_PATH = ROOT / "schema.postgres.sql"
MIGRATIONS = ROOT / "migrations" / "postgres"
SCHEMA_VERSION = 3  # the same numbers as the SQLite schema (sqlite.SCHEMA_VERSION)
SCHEMA_LOCK = 730113  # advisory lock key: one process applies the schema at a time
LOCK_TIMEOUT_MS = 10_000  # a row or table lock held longer than this is StorageBusy, as SQLite's busy timeout


@lru_cache(maxsize=512)
def placeholders(statement: str) -> str:
    """`?` parameters as psycopg's `%s`; a literal `%` (e.g. in LIKE) doubled so it stays one."""
    return re.sub(r"\?", "%s", statement.replace("%", "%%"))


def lock_key(name: str) -> int:
    """A stable 32-bit key for a named advisory lock."""
    return zlib.crc32(f"docproc:{name}".encode())


def translate(exc: psycopg.Error) -> StorageError | None:
    """A storage fault as the engine's exception, or None for a fault of the statement itself."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, (pgerrors.LockNotAvailable, pgerrors.DeadlockDetected, pgerrors.SerializationFailure,
                        pgerrors.QueryCanceled, pgerrors.TooManyConnections, pgerrors.CannotConnectNow)):
        return StorageBusy(f"the database is busy: {text}")
    if isinstance(exc, (pgerrors.DiskFull, pgerrors.InsufficientResources, pgerrors.OutOfMemory)):
        return StorageFull(f"the disk is full: {text}")
    if isinstance(exc, (psycopg.OperationalError, pgerrors.AdminShutdown, pgerrors.CrashShutdown,
                        pgerrors.IoError, pgerrors.SystemError)):
        return StorageError(f"the database cannot be reached or written: {text}")
    return None


class Result:
    """What a statement gave back: its rows (RETURNING or SELECT) and how many rows it changed."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list, rowcount: int):
        self.rows = rows
        self.rowcount = rowcount


def _run(conn: psycopg.Connection, statement: str, args) -> Result:
    cur = conn.execute(placeholders(statement), tuple(args))
    rows = cur.fetchall() if cur.description is not None else []
    return Result(rows, cur.rowcount)


class _Tx:
    __slots__ = ("conn",)

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def execute(self, statement: str, args=()) -> Result:
        return _run(self.conn, statement, args)


class PostgresDatabase:
    """Owns the connection pool, the transaction rule, the schema and its migrations."""

    dialect = POSTGRES

    def __init__(self, url: str, *, clock=time.time, min_size: int = 1, max_size: int = 16,
                 pool_timeout: float = 30.0, lock_timeout_ms: int = LOCK_TIMEOUT_MS):
        self.url = url
        self.clock = clock
        self.fault: dict | None = None
        self._pool_args = dict(
            min_size=min_size, max_size=max_size, timeout=pool_timeout, open=False, name="docproc",
            kwargs={"autocommit": True, "row_factory": dict_row,
                    "options": f"-c lock_timeout={int(lock_timeout_ms)}", "application_name": "docproc"},
            check=ConnectionPool.check_connection,  # a connection the server dropped is replaced, not used
        )
        self._pool = ConnectionPool(url, **self._pool_args)
        self._opened = False
        self._open_lock = threading.Lock()

    def _connection(self):
        if not self._opened:
            with self._open_lock:
                if not self._opened:
                    self._pool.open(wait=False)
                    self._opened = True
        return self._pool.connection()

    # -- faults ------------------------------------------------------------------------
    def _failed(self, exc: Exception) -> Exception:
        if isinstance(exc, PoolTimeout):
            storage: StorageError | None = StorageBusy(f"no database connection within the pool timeout: {exc}")
        else:
            storage = translate(exc)
        if storage is None:
            return exc
        self.fault = {"at": self.clock(), "error": storage.message}
        return storage

    def _ok(self) -> None:
        if self.fault is not None:
            logger.info("storage writes succeed again after: %s", self.fault["error"])
            self.fault = None

    @contextmanager
    def _guarded(self):
        try:
            yield
        except (psycopg.Error, PoolTimeout) as exc:
            failed = self._failed(exc)
            if failed is exc:
                raise
            raise failed from exc

    # -- statements ----------------------------------------------------------------------
    def read(self, statement: str, args=()) -> list:
        with self._guarded(), self._connection() as conn:
            return _run(conn, statement, args).rows

    def write(self, statement: str, args=()) -> Result:
        """One statement, committed on its own."""
        with self._guarded(), self._connection() as conn:
            result = _run(conn, statement, args)
        self._ok()
        return result

    def write_many(self, statement: str, rows: list[tuple]) -> int:
        """One statement for many parameter rows, in one transaction."""
        if not rows:
            return 0
        with self._guarded(), self._connection() as conn, conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(placeholders(statement), [tuple(r) for r in rows])
                changed = cur.rowcount
        self._ok()
        return changed

    @contextmanager
    def transaction(self):
        """BEGIN ... COMMIT on one connection, or ROLLBACK and re-raise."""
        with self._guarded(), self._connection() as conn, conn.transaction():
            yield _Tx(conn)
        self._ok()

    @contextmanager
    def exclusive(self, name: str):
        """True inside when this process took the named advisory lock; False when another holds it."""
        key = lock_key(name)
        with self._guarded(), self._connection() as conn:
            mine = bool(conn.execute("SELECT pg_try_advisory_lock(%s) AS mine", (key,)).fetchone()["mine"])
            try:
                yield mine
            finally:
                if mine:
                    try:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                    except psycopg.Error:
                        conn.close()  # the session (and with it the lock) ends; the pool drops the connection

    # -- schema ------------------------------------------------------------------------
    def init_schema(self) -> None:
        """Bring an older database up to date with migrations/postgres/, then apply schema.postgres.sql."""
        with self._guarded(), self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))  # workers starting together
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) AS v FROM schema_version").fetchone()
            version = row["v"] or 0
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"database schema version {version} is newer than this docproc ({SCHEMA_VERSION})")
            has_tasks = conn.execute("SELECT to_regclass('tasks') IS NOT NULL AS found").fetchone()["found"]
            if has_tasks and version < SCHEMA_VERSION:
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for path in sorted(MIGRATIONS.glob(f"{step:03d}_*.sql")):
                        logger.info("migrating the database to version %d (%s)", step, path.name)
                        conn.execute(path.read_text())
            conn.execute(SCHEMA_PATH.read_text())
            if version != SCHEMA_VERSION:
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))

    def close_all(self) -> None:
        """Close every connection (at shutdown); a later statement opens a fresh pool."""
        with self._open_lock:
            if self._opened:
                self._pool.close()
                self._pool = ConnectionPool(self.url, **self._pool_args)
                self._opened = False
