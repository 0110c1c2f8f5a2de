"""The distributed mode as real processes: API servers (`python run.py`) and Celery workers
(`python -m app.cli worker`) on one PostgreSQL database and one Redis, with a webhook receiver."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from server_process import PYTHON, ROOT, ServerProcess


class WorkerProcess(ServerProcess):
    """One `docproc worker` child; ready once Celery consumes."""

    def __init__(self, data_dir: Path, log_path: Path, *, concurrency: int = 2, **env: str):
        super().__init__(data_dir, log_path, **env)
        self.concurrency = concurrency

    def start(self, timeout: float = 30.0) -> "WorkerProcess":
        import subprocess

        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(PYTHON), "-m", "app.cli", "worker", "--concurrency", str(self.concurrency)], cwd=ROOT,
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if "ready: consuming" in self.log():
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"worker did not start within {timeout}s:\n{self.log()}")

    def full_log(self) -> str:
        return self.log_path.read_text(errors="replace")


class WebhookReceiver:
    """Counts the POSTs it receives per task id (X-Docproc-Task), answering 200."""

    def __init__(self):
        self.received: Counter = Counter()
        self.bodies: dict[str, dict] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                task_id = self.headers.get("X-Docproc-Task", "")
                receiver.received[task_id] += 1
                receiver.bodies[task_id] = json.loads(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Cluster:
    """Two API processes and two workers sharing a database, a broker and a data directory."""

    def __init__(self, tmp: Path, database_url: str, broker_url: str, **env: str):
        self.tmp = tmp
        self.database_url = database_url
        self.env = {"DOCPROC_DATABASE_URL": database_url, "DOCPROC_BROKER_URL": broker_url,
                    "DOCPROC_OCR_CONCURRENCY": "1", **env}
        data = tmp / "data"  # one shared DOCPROC_DATA_DIR
        self.apis = [ServerProcess(data, tmp / f"api{i}.log", **self.env) for i in range(2)]
        self.workers = [WorkerProcess(data, tmp / f"worker{i}.log", **self.env) for i in range(2)]

    def start(self) -> "Cluster":
        for p in (*self.apis, *self.workers):
            p.start()
        return self

    def stop(self) -> None:
        for p in (*self.workers, *self.apis):
            if p.proc is not None and p.proc.poll() is None:
                p.signal(15)
        for p in (*self.workers, *self.apis):
            if p.proc is not None:
                try:
                    p.wait(20)
                except Exception:
                    p.kill()

    def rows(self, sql: str, *args) -> list[dict]:
        """Read the database directly: it is the truth."""
        with psycopg.connect(self.database_url, row_factory=dict_row, autocommit=True) as conn:
            return conn.execute(sql, args).fetchall()

    def task(self, task_id: str) -> dict:
        return self.rows("SELECT * FROM tasks WHERE id = %s", task_id)[0]

    def holder(self, task_id: str, timeout: float = 30.0) -> WorkerProcess:
        """The worker whose log says it started this task (bounded wait)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for w in self.workers:
                if w.proc is not None and w.proc.poll() is None and f"task {task_id} started" in w.log():
                    return w
            time.sleep(0.02)
        raise AssertionError(f"no worker started {task_id} within {timeout}s")

    def logs(self) -> str:
        return "".join(w.full_log() for w in self.workers if w.log_path.exists())

    def wait_row(self, task_id: str, predicate, timeout: float = 60.0) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            row = self.task(task_id)
            if predicate(row):
                return row
            time.sleep(0.05)
        raise AssertionError(f"task {task_id} never matched within {timeout}s: {self.task(task_id)}")
