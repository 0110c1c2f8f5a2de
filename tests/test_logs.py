"""Logs: one line per task event with its id; DOCPROC_LOG_FORMAT=json gives JSON lines."""
from __future__ import annotations

import io
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from app.logs import JsonFormatter
from conftest import wait_for
from drawing import draw_page, png_bytes, receipt_lines

ROOT = Path(__file__).resolve().parent.parent


def json_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


def test_json_formatter_fields_task_id_extra_and_exception():
    logger, out = json_logger("docproc.test.json")
    task_id = str(uuid.uuid4())
    logger.info("task %s completed in %.2fs", task_id, 1.5)
    logger.warning("plain message", extra={"tenant": "acme", "odd": object(), "task_id": "explicit"})
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("task %s: internal error", task_id)
    first, second, third = [json.loads(line) for line in out.getvalue().splitlines()]
    assert first["message"] == f"task {task_id} completed in 1.50s" and first["task_id"] == task_id
    assert first["level"] == "info" and first["logger"] == "docproc.test.json" and first["thread"] == "MainThread"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    # extra= fields become fields; an explicit task_id wins; unserialisable values become text.
    assert second["tenant"] == "acme" and second["task_id"] == "explicit" and second["odd"].startswith("<object")
    assert "exception" not in second and "args" not in second
    assert third["level"] == "error" and third["task_id"] == task_id
    assert "ValueError: boom" in third["exception"] and "Traceback" in third["exception"]


def test_cancelling_a_pending_task_logs_its_id(client, caplog):
    page = png_bytes(draw_page(["Total: $1.00"], size=(600, 200)))
    r = client.post("/api/tasks", data={"type": "document", "file": (io.BytesIO(page), "p.png")})
    task_id = r.get_json()["id"]
    with caplog.at_level(logging.INFO):
        assert client.delete(f"/api/tasks/{task_id}").status_code == 200
    lines = [json.loads(JsonFormatter().format(rec)) for rec in caplog.records]
    assert {"task_id": task_id, "message": f"task {task_id} cancelled while pending"}.items() <= lines[-1].items()


class ServerProcess:
    """`python run.py` in a subprocess; stderr lines collected by a reader thread."""

    def __init__(self, tmp_path: Path, log_format: str):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCPROC_", "OPENAI_"))}
        env.update(DOCPROC_PORT="0", DOCPROC_DATA_DIR=str(tmp_path / "data"), DOCPROC_LOG_FORMAT=log_format,
                   DOCPROC_WORKERS="2", DOCPROC_OCR_CONCURRENCY="1", DOCPROC_ALLOW_ANONYMOUS="1",
                   DOCPROC_SHUTDOWN_GRACE="10", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "run.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, name="server-stderr", daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, pattern: str, timeout: float = 30.0) -> re.Match:
        end = time.monotonic() + timeout
        for line in self.seen:
            if m := re.search(pattern, line):
                return m
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=max(end - time.monotonic(), 0.01))
            except queue.Empty:
                break
            self.seen.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no log line matching {pattern!r} in {timeout}s; got: {self.seen[-20:]}")

    def stop(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)  # the process is gone: its stderr ends
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def run_server(tmp_path):
    started = []

    def start(log_format):
        server = ServerProcess(tmp_path, log_format)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def submit_receipt(url: str) -> str:
    with requests.Session() as http:
        r = http.post(url + "/api/tasks", data={"type": "document"},
                      files={"file": ("receipt.png", png_bytes(draw_page(receipt_lines())), "image/png")}, timeout=30)
        assert r.status_code == 202, r.text
        task = wait_for(http, url + r.headers["Location"])
    assert task["status"] == "completed"
    return task["id"]


def test_json_logs_from_the_real_server(run_server):
    server = run_server("json")
    port = int(server.wait_for_line(r"docproc listening on http://127\.0\.0\.1:(\d+)").group(1))
    task_id = submit_receipt(f"http://127.0.0.1:{port}")
    server.wait_for_line(rf"task {task_id} completed")
    assert server.stop() == 0
    records = [json.loads(line) for line in server.seen]  # every stderr line is one JSON object
    assert all({"ts", "level", "logger", "thread", "message"} <= r.keys() for r in records)
    events = [r["message"].split()[2].rstrip(":") for r in records if r.get("task_id") == task_id]
    assert events == ["submitted", "started", "completed"]
    task_records = [r for r in records if r.get("task_id") == task_id]
    assert {r["logger"] for r in task_records} >= {"app.intake", "app.engine.execute"}
    messages = [r["message"] for r in records]
    assert any(m.startswith("signal 15: draining") for m in messages)
    assert messages[-1] == "docproc stopped"


def test_text_logs_carry_the_task_id_too(run_server):
    server = run_server("text")
    port = int(server.wait_for_line(r"INFO MainThread app\.server: docproc listening on http://127\.0\.0\.1:(\d+)")
               .group(1))
    task_id = submit_receipt(f"http://127.0.0.1:{port}")
    server.wait_for_line(rf"task {task_id} completed")
    assert server.stop() == 0
    for event in ("submitted", "started", "completed"):
        assert sum(f"task {task_id} {event}" in line for line in server.seen) == 1
    assert not any(line.lstrip().startswith("{") for line in server.seen)
