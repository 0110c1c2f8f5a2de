"""Content-addressed file store: uploads are written by hash before their task row commits."""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import sqlite3
import tempfile
import threading
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".upload-"  # a file being written; renamed to its hash once complete
TEMP_GRACE = 600.0  # a temporary untouched this long was left by a process killed mid-write


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error means the storage has no room: a file write, SQLite or PostgreSQL saying so."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return True
    return getattr(exc, "sqlstate", None) == "53100"  # PostgreSQL disk_full


class FileStore:
    """Files under root/ab/abcdef...; pins keep in-flight uploads safe from cleanup."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pins: Counter[str] = Counter()

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    @staticmethod
    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    def _write(self, sha256: str, data: bytes) -> bool:
        """Write atomically (temp file + rename); False when the file was already there.

        Written even then (the same bytes replace themselves): skipping the write would make a file
        another tenant already sent measurably faster to submit.
        """
        path = self.path_for(sha256)
        existed = os.path.exists(path)  # os.path: a third of pathlib's cost, on every submission
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return not existed

    @contextmanager
    def staged(self, blobs: list[bytes], still_needed, *, hashes: list[str] | None = None):
        """Store blobs and yield their hashes; if the body raises, remove what this call added.

        The hashes stay pinned until the block ends, so neither a parallel failed request
        nor the janitor can delete a file that a task row is about to name; still_needed(h)
        tells whether a committed task already reads a file this call wrote.
        """
        hashes = hashes if hashes is not None else [self.digest(b) for b in blobs]
        added: list[str] = []
        with self._lock:
            self._pins.update(hashes)
        try:
            for h, data in zip(hashes, blobs):
                if h not in added and self._write(h, data):
                    added.append(h)
            yield hashes
        except BaseException:
            self._unpin(hashes, remove=added, still_needed=still_needed)
            raise
        self._unpin(hashes, remove=(), still_needed=still_needed)

    def _unpin(self, hashes, *, remove, still_needed) -> None:
        with self._lock:
            self._pins.subtract(hashes)
            self._pins = +self._pins
            for h in remove:
                if not self._pins[h] and not still_needed(h):
                    self.path_for(h).unlink(missing_ok=True)

    def delete_unless_pinned(self, sha256: str, still_needed) -> bool:
        """Delete a file unless an upload holds it or still_needed(sha256) says a task reads it."""
        with self._lock:
            if self._pins[sha256] or still_needed(sha256):
                return False
            self.path_for(sha256).unlink(missing_ok=True)
            return True

    def all_hashes(self):
        """Every stored file's hash with its modification time (for the orphan sweep)."""
        for sub in self.root.iterdir():
            if sub.is_dir():
                for f in sub.iterdir():
                    if not f.name.startswith("."):
                        yield f.name, f.stat().st_mtime

    def remove_stale_temporaries(self, older_than: float) -> int:
        """Delete half-written uploads last modified before `older_than` (a kill -9 mid-write leaves them)."""
        removed = 0
        for tmp in self.root.glob(f"*/{TEMP_PREFIX}*"):
            try:
                if tmp.stat().st_mtime < older_than:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # finished (renamed) or removed meanwhile
        return removed
