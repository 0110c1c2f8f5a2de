"""The real service as a child process (`python run.py`), for crash, shutdown and soak tests."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
LISTENING = re.compile(r"docproc listening on http://127\.0\.0\.1:(\d+)")


class ServerProcess:
    """One `run.py` child on a data dir; stderr goes to a log file the test can read."""

    def __init__(self, data_dir: Path, log_path: Path, **env: str):
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCPROC_", "OPENAI_"))}
        self.env.update({"DOCPROC_DATA_DIR": str(self.data_dir), "DOCPROC_HOST": "127.0.0.1", "DOCPROC_PORT": "0",
                         "DOCPROC_WORKERS": "3", "DOCPROC_OCR_CONCURRENCY": "2", "DOCPROC_LOG_LEVEL": "INFO",
                         "PYTHONUNBUFFERED": "1"})
        self.env.update({k: str(v) for k, v in env.items()})
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self._offset = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        """Start the child and wait for its 'listening' line (bounded)."""
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([str(PYTHON if PYTHON.exists() else sys.executable), "run.py"], cwd=ROOT,
                                         env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            match = LISTENING.search(self.log())
            if match:
                self.url = f"http://127.0.0.1:{match.group(1)}"
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"server did not start within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        """What this run (since the last start) wrote to stderr."""
        with open(self.log_path, "rb") as fh:
            fh.seek(self._offset)
            return fh.read().decode("utf-8", "replace")

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > end:
                raise AssertionError(f"{text!r} not logged within {timeout}s:\n{self.log()}")
            time.sleep(0.02)

    def kill(self) -> None:
        """kill -9, as a crash or the OOM killer would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def peak_rss_kb(self) -> int:
        """VmHWM of the live child: the most resident memory it ever had."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc status")


def query(data_dir: Path, sql: str, *args) -> list[sqlite3.Row]:
    """Read the service's SQLite file directly (the database is the truth)."""
    conn = sqlite3.connect(Path(data_dir) / "docproc.sqlite3", timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
