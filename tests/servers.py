"""Throwaway PostgreSQL and Redis servers for the tests: unprivileged, in a temp dir, unix sockets only.

PostgreSQL refuses to run as root, so initdb and the server run as the `postgres` user when the
tests run as root (as CI does). Neither server listens on a TCP port, so parallel runs never clash.
Every wait is bounded.
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

START_TIMEOUT = 30.0


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return candidates[-1] if candidates else None


def available() -> str | None:
    """Why the servers cannot start here, or None when they can."""
    missing = [n for n in ("initdb", "pg_ctl") if _binary(n) is None]
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    return f"not installed: {', '.join(missing)} (bash dev.sh test installs them)" if missing else None


class PostgresServer:
    """One PostgreSQL cluster in a temp dir; databases are made per test from a template."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="docproc-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        self._names = itertools.count()

    def _run(self, *argv: str, timeout: float = START_TIMEOUT) -> None:
        cmd = list(argv)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> "PostgresServer":
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(_binary("initdb"), "-D", str(self.data), "-U", "docproc", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (f"-k {self.root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
                   " -c full_page_writes=off -c max_connections=400 -c shared_buffers=32MB")
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-t", str(int(START_TIMEOUT)), "-o", options, "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://docproc@/{database}?host={self.root}"

    def admin(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def new_database(self, template: str | None = None) -> str:
        """A fresh, empty database (a copy of template when given); its URL."""
        name = f"t{next(self._names)}_{uuid.uuid4().hex[:8]}"
        self.admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""))
        return self.url(name)

    @staticmethod
    def database_name(url: str) -> str:
        return url.split("@/", 1)[1].split("?", 1)[0]

    def drop_database(self, url: str) -> None:
        name = self.database_name(url)
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        try:
            self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """One redis-server on a unix socket, without persistence (a restart loses every message)."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="docproc-redis-"))
        self.socket = self.root / "redis.sock"
        self.process: subprocess.Popen | None = None
        self._dbs = itertools.count(1)

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--databases", "256", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if self._ping():
                return self
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer within 30 s")

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1.0)
                s.connect(str(self.socket))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def url(self, db: int = 0) -> str:
        return f"redis+socket://{self.socket}?virtual_host={db}"

    def new_db(self) -> int:
        return next(self._dbs) % 256

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
