"""Faults: retries, timeouts, kill -9 recovery, graceful shutdown, backpressure, the data-dir lock."""
from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

from app import create_app
from app.auth import create_key
from app.engine.store import Guard
from app.models import TaskStatus
from app.server import Service
from app.workers import DataDirBusy
from conftest import llm_settings, make_settings, wait_for
from drawing import draw_page, png_bytes, receipt_lines, tiff_bytes
from server_process import ServerProcess, query


def page(n: int, label: str = "Page") -> bytes:
    """A small distinct page (about 0.3 s of OCR), so the result cache never joins two tasks."""
    return png_bytes(draw_page([f"{label} number {n}", "Receipt", f"Total: ${n}.00"], size=(900, 400), font_size=32))


def post(http, url: str, data: bytes, name: str = "page.png", **fields) -> requests.Response:
    return http.post(url + "/api/tasks", data={"type": "document", **fields},
                     files={"file": (name, data, "application/octet-stream")}, timeout=30)


def submit(http, url: str, data: bytes, **fields) -> str:
    r = post(http, url, data, **fields)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def at(entry: dict) -> float:
    """An error entry's time as Unix seconds."""
    return datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()


def until(condition, timeout: float, what: str, interval: float = 0.02):
    """Poll condition() until it returns something truthy (bounded); return that."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout}s")


@pytest.fixture
def llm_service(tmp_path, fake, start_service):
    """Factory: a real service whose extractor talks to the fake LLM."""
    def start(**overrides) -> Service:
        settings = llm_settings(tmp_path, fake, **overrides)
        return start_service(create_app(settings))
    return start


@pytest.fixture
def servers():
    """Factory for `run.py` children; every one still alive is killed at teardown."""
    started: list[ServerProcess] = []

    def make(data_dir: Path, **env) -> ServerProcess:
        srv = ServerProcess(data_dir, Path(data_dir).parent / "server.log", **env)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.kill()


# -- retries ------------------------------------------------------------------------------------
def test_server_error_is_retried_and_completes(llm_service, fake, http):
    fake.script([("status", 500)])
    svc = llm_service()
    task = wait_for(http, f"{svc.url}/api/tasks/{submit(http, svc.url, page(1))}")
    assert task["status"] == "completed", task
    assert task["attempts"] == 2 and len(fake.requests) == 2
    assert task["result"]["extractor"].startswith("llm:") and task["result"]["title"]
    (entry,) = task["errors"]
    assert entry["stage"] == "extract" and entry["attempt"] == 1 and "500" in entry["message"]


def test_retry_after_an_llm_failure_reuses_the_ocr(llm_service, fake, http, caplog):
    fake.script([("status", 503)])
    svc = llm_service()
    with caplog.at_level(logging.INFO, logger="app.strategies.base"):
        task = wait_for(http, f"{svc.url}/api/tasks/{submit(http, svc.url, page(3))}")
    assert task["status"] == "completed" and task["attempts"] == 2, task
    reused = [r.getMessage() for r in caplog.records if "reusing the OCR" in r.getMessage()]
    assert reused == [f"task {task['id']}: reusing the OCR of 1 of 1 pages from an earlier attempt"]
    first, second = fake.requests
    assert first["messages"][1:] == second["messages"][1:]  # the same OCR text went to the LLM
    assert "number 3" in task["result"]["text"]
    (row,) = query(svc.rt.settings.data_dir, "SELECT count(*) FROM task_pages WHERE task_id = ?", task["id"])
    assert row[0] == 0  # kept only while a retry may need it


def test_429_waits_for_retry_after_without_holding_the_worker(llm_service, fake, http):
    # Backoff alone would retry within 0.05 s; only the Retry-After header makes it wait 2 s.
    fake.script([("status", 429, {"Retry-After": "2"})])
    svc = llm_service(workers=1, retry_base_delay=0.05, retry_max_delay=10.0)
    first = submit(http, svc.url, page(1))
    until(lambda: fake.responses, 30, "the 429")
    # With one worker, a second task can only run now if the first one is not holding it.
    second = wait_for(http, f"{svc.url}/api/tasks/{submit(http, svc.url, page(2))}")
    until(lambda: len(fake.requests) >= 3, 30, "the retry of the first task")
    retried_at = time.time()  # observed no earlier than the retry really arrived
    task = wait_for(http, f"{svc.url}/api/tasks/{first}")
    assert task["status"] == "completed" and task["attempts"] == 2, task
    (entry,) = task["errors"]
    assert "429" in entry["message"] and entry["attempt"] == 1
    assert retried_at - at(entry) >= 2.0  # the retry did not come before Retry-After
    assert second["status"] == "completed" and second["attempts"] == 1
    assert second["completed_at"] < task["completed_at"]  # it ran while the first one waited
    assert fake.responses[0][0] == 429 and [s for s, _ in fake.responses[1:]] == [200, 200]


def test_client_error_from_llm_fails_at_once(llm_service, fake, http):
    fake.script([("status", 400)])
    svc = llm_service()
    task = wait_for(http, f"{svc.url}/api/tasks/{submit(http, svc.url, page(1))}")
    assert task["status"] == "failed" and task["attempts"] == 1 and task["result"] is None
    (entry,) = task["errors"]
    assert entry["stage"] == "extract" and "400" in entry["message"] and "gave up" not in entry["message"]
    assert len(fake.requests) == 1


def test_reply_still_invalid_after_repair_fails_at_once(llm_service, fake, http):
    fake.script([("text", "not json"), ("text", "still not json")])
    svc = llm_service()
    task = wait_for(http, f"{svc.url}/api/tasks/{submit(http, svc.url, page(1))}")
    assert task["status"] == "failed" and task["attempts"] == 1, task
    (entry,) = task["errors"]
    assert entry["stage"] == "extract" and "invalid after repair" in entry["message"]
    assert len(fake.requests) == 2  # the question and one repair, no retry


def test_gives_up_after_max_attempts(llm_service, fake, http):
    fake.script([("status", 503)] * 3)
    svc = llm_service(max_attempts=3)
    task = wait_for(http, f"{svc.url}/api/tasks/{submit(http, svc.url, page(1))}")
    assert task["status"] == "failed" and task["attempts"] == 3, task
    assert [e["attempt"] for e in task["errors"]] == [1, 2, 3]
    assert all(e["stage"] == "extract" and "503" in e["message"] for e in task["errors"])
    assert task["errors"][-1]["message"].endswith("(gave up after 3 attempts)")
    assert len(fake.requests) == 3 and fake.pending == 0


# -- timeouts -----------------------------------------------------------------------------------
def test_slow_llm_request_is_abandoned_at_llm_timeout(llm_service, fake, http):
    fake.script([("delay", 10, ("default",))] * 2)
    svc = llm_service(llm_timeout=0.5, max_attempts=2)
    task = wait_for(http, f"{svc.url}/api/tasks/{submit(http, svc.url, page(1))}")
    assert not fake.responses  # both requests were given up, not waited for
    assert task["status"] == "failed" and task["attempts"] == 2, task
    assert all(e["stage"] == "extract" and "timed out after 0.5s" in e["message"] for e in task["errors"])
    assert task["errors"][-1]["message"].endswith("(gave up after 2 attempts)")


def test_task_deadline_fails_the_task_and_the_late_answer_changes_nothing(llm_service, fake, http):
    fake.script([("delay", 4.5, ("default",))])
    svc = llm_service(task_timeout=3.0, llm_timeout=30.0)
    url = f"{svc.url}/api/tasks/{submit(http, svc.url, page(1))}"
    task = wait_for(http, url)
    assert task["status"] == "failed" and task["attempts"] == 1 and task["result"] is None, task
    (entry,) = task["errors"]
    assert entry["stage"] == "extract" and "deadline" in entry["message"]
    assert not fake.responses  # abandoned at the deadline, long before the endpoint answered
    until(lambda: fake.responses, 30, "the slow LLM's late answer")
    later = http.get(url).json()
    assert later["status"] == "failed" and later["result"] is None
    assert later["errors"] == task["errors"] and later["completed_at"] == task["completed_at"]


def test_janitor_expires_a_stuck_attempt_and_its_late_writes_are_refused(app, client, small_page):
    rt = app.extensions["docproc"]
    task_id = client.post("/api/tasks", data={"type": "document", "file": (io.BytesIO(small_page), "p.png")}).json["id"]
    # A worker claimed the task, then hung past its deadline (a wedged library call, say).
    now = time.time()
    assert rt.db.claim_task(task_id, "stuck", now - 10, deadline=now - 1, lease_until=now + 60) is not None
    assert rt.pool.janitor.run_once()["expired"] == 1
    row = rt.db.get_task(task_id)
    assert row["status"] == "failed" and json.loads(row["errors"])[-1]["stage"] == "timeout"
    # The stuck attempt wakes up: every write it tries changes nothing.
    now = time.time()
    assert rt.db.record_progress(task_id, "stuck", 0.9, "extract", now, now + 60) is None
    assert rt.db.keep_page(task_id, "stuck", 0, {"text": "late"}) is False
    assert rt.db.hand_off(task_id, "stuck", "extract", "extract queued", now) is False
    assert rt.db.retry_later(task_id, "stuck", "extract", "late", now, now, "extract") is False
    assert rt.db.release_task(task_id, "stuck", now) is False
    for status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED):
        assert rt.lifecycle.finish(task_id, status, Guard.attempt("stuck"), result={"title": "late"}) is None
    row = rt.db.get_task(task_id)
    assert row["status"] == "failed" and row["result"] is None and len(json.loads(row["errors"])) == 1


@pytest.fixture
def small_page():
    return page(0, "Small")


def live_tesseract_children() -> list[int]:
    """Tesseract processes started by this test process that are still running (not zombies)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if (fields.get("Name", "").strip() == "tesseract" and int(fields["PPid"]) == os.getpid()
                and not fields.get("State", "").strip().startswith("Z")):
            found.append(int(status.parent.name))
    return found


def test_tesseract_is_killed_at_the_ocr_timeout(tmp_path, start_service, http):
    svc = start_service(create_app(make_settings(tmp_path, ocr_timeout=0.05, max_attempts=2)))
    task = wait_for(http, f"{svc.url}/api/tasks/{submit(http, svc.url, png_bytes(draw_page(receipt_lines())))}")
    assert task["status"] == "failed" and task["attempts"] == 2, task
    assert all(e["stage"] == "ocr" and "tesseract timed out after 0.05s" in e["message"] for e in task["errors"])
    assert task["errors"][-1]["message"].endswith("(gave up after 2 attempts)")
    assert live_tesseract_children() == []


def test_task_deadline_kills_the_running_tesseract(tmp_path, start_service, http):
    # ocr_timeout is generous; only the task's own deadline can stop this page early.
    svc = start_service(create_app(make_settings(tmp_path, task_timeout=0.15, ocr_timeout=60, max_attempts=3)))
    pages = [draw_page([f"Deadline page {i}"] + receipt_lines()) for i in range(3)]
    r = http.post(svc.url + "/api/tasks", data={"type": "document"},
                  files={"file": ("t.tiff", tiff_bytes(pages), "image/tiff")})
    task = wait_for(http, svc.url + r.headers["Location"])
    assert task["status"] == "failed" and task["attempts"] == 1, task
    assert task["errors"][-1]["stage"] == "ocr" and "deadline" in task["errors"][-1]["message"]
    until(lambda: live_tesseract_children() == [], 5, "tesseract killed at the deadline")


# -- crash safety (the real process, kill -9) ---------------------------------------------------
def completed_lines(log: str) -> list[str]:
    return re.findall(r"task ([0-9a-f-]{36}) completed in", log)


def test_kill_9_mid_run_loses_and_repeats_nothing(tmp_path, servers, http):
    data = tmp_path / "data"
    srv = servers(data, DOCPROC_WORKERS="3", DOCPROC_OCR_CONCURRENCY="2").start()
    ids = [submit(http, srv.url, page(n, "Crash")) for n in range(50)]
    assert len(set(ids)) == 50

    def mid_run():
        counts = dict(query(data, "SELECT status, count(*) FROM tasks GROUP BY status"))
        return counts.get("completed", 0) >= 5 and counts.get("processing", 0) >= 1
    until(mid_run, 60, "a state with finished and running tasks")
    srv.kill()
    before = {r["id"]: dict(r) for r in query(data, "SELECT * FROM tasks")}
    assert set(before) == set(ids)  # every accepted task was durable before the crash
    interrupted = {t for t, r in before.items() if r["status"] == "processing"}
    done_before = {t: r for t, r in before.items() if r["status"] == "completed"}
    assert interrupted and done_before and len(done_before) < 50

    srv.start()
    until(lambda: query(data, "SELECT count(*) FROM tasks WHERE status = 'completed'")[0][0] == 50, 120,
          "every task completed after the restart", interval=0.2)
    after = {r["id"]: dict(r) for r in query(data, "SELECT * FROM tasks")}
    assert set(after) == set(ids) and query(data, "SELECT count(*) FROM tasks")[0][0] == 50
    assert query(data, "SELECT count(DISTINCT task_id) FROM task_files")[0][0] == 50
    for task_id, row in after.items():
        assert row["status"] == "completed" and json.loads(row["result"])["text"], task_id
        if task_id in interrupted:
            assert row["resumes"] == 1 and row["attempts"] == 2
            assert [e["stage"] for e in json.loads(row["errors"])] == ["recovery"]
        else:
            assert row["resumes"] == 0 and row["attempts"] == 1 and row["errors"] == "[]"
    for task_id, row in done_before.items():  # finished work was not run again
        assert after[task_id]["result"] == row["result"] and after[task_id]["completed_at"] == row["completed_at"]
    log = srv.log_path.read_text()
    lines = completed_lines(log)
    assert len(lines) == len(set(lines))  # no task completed twice
    assert set(completed_lines(srv.log())) == set(ids) - set(done_before)
    api = http.get(f"{srv.url}/api/tasks", params={"limit": 100}).json()["tasks"]
    assert sorted(t["id"] for t in api) == sorted(ids)


def test_a_task_that_keeps_killing_the_process_is_given_up(tmp_path, servers, http):
    data = tmp_path / "data"
    srv = servers(data, DOCPROC_WORKERS="1", DOCPROC_OCR_CONCURRENCY="1", DOCPROC_MAX_RESUMES="2").start()
    pages = [draw_page([f"Poison page {i}"] + receipt_lines()) for i in range(8)]
    r = http.post(srv.url + "/api/tasks", data={"type": "document"},
                  files={"file": ("poison.tiff", tiff_bytes(pages), "image/tiff")}, timeout=30)
    task_id = r.json()["id"]

    def status():
        return query(data, "SELECT status FROM tasks WHERE id = ?", task_id)[0][0]
    for _ in range(3):  # it "crashes" the service every time it runs: resumed twice, then given up
        until(lambda: status() == "processing", 60, "the poison task running")
        srv.kill()
        srv.start()
    task = http.get(f"{srv.url}/api/tasks/{task_id}").json()
    assert task["status"] == "failed" and task["resumes"] == 2 and task["result"] is None, task
    assert [e["stage"] for e in task["errors"]] == ["recovery"] * 3
    assert "died while running this task 3 times; giving up" in task["errors"][-1]["message"]
    assert f"task {task_id} failed: the service died while running it too many times" in srv.log()
    # The service itself is fine and works on.
    assert wait_for(http, f"{srv.url}/api/tasks/{submit(http, srv.url, page(1))}")["status"] == "completed"
    assert status() == "failed"


# -- graceful shutdown ------------------------------------------------------------------------
def busy_server(servers, data: Path, grace: float) -> tuple[ServerProcess, list[str]]:
    """A child with long multi-page tasks running and short ones waiting."""
    srv = servers(data, DOCPROC_WORKERS="3", DOCPROC_OCR_CONCURRENCY="2", DOCPROC_SHUTDOWN_GRACE=str(grace)).start()
    with requests.Session() as http:
        ids = []
        for n in range(2):
            pages = [draw_page([f"Shutdown doc {n} page {i}"] + receipt_lines()) for i in range(12)]
            r = http.post(srv.url + "/api/tasks", data={"type": "document"},
                          files={"file": ("d.tiff", tiff_bytes(pages), "image/tiff")}, timeout=30)
            ids.append(r.json()["id"])
        ids += [submit(http, srv.url, page(n, "Waiting")) for n in range(4)]
    long_running = "SELECT count(*) FROM tasks WHERE status = 'processing' AND id IN (?, ?)"
    until(lambda: query(data, long_running, *ids[:2])[0][0] == 2, 60, "the long tasks running")
    return srv, ids


def restart_and_finish(srv: ServerProcess, ids: list[str]) -> None:
    srv.start()
    until(lambda: query(srv.data_dir, "SELECT count(*) FROM tasks WHERE status = 'completed'")[0][0] == len(ids),
          120, "every task completed after the restart", interval=0.2)
    assert {r[0] for r in query(srv.data_dir, "SELECT id FROM tasks")} == set(ids)


def test_sigterm_drains_within_grace_and_loses_nothing(tmp_path, servers):
    grace = 1.0
    srv, ids = busy_server(servers, tmp_path / "data", grace)
    began = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=grace + 30) == 0
    took = time.monotonic() - began
    print(f"SIGTERM to exit: {took:.2f}s (grace {grace}s)")
    log = srv.log()
    assert "draining" in log and "docproc stopped" in log
    rows = {r["id"]: dict(r) for r in query(srv.data_dir, "SELECT * FROM tasks")}
    assert set(rows) == set(ids)
    assert {r["status"] for r in rows.values()} <= {"completed", "pending"}  # nothing left 'processing'
    released = {t for t, r in rows.items() if any(e["stage"] == "shutdown" for e in json.loads(r["errors"]))}
    assert released  # the long ones (12 pages) could not finish within 1 s: back to pending, said why
    assert all(rows[t]["status"] == "pending" and rows[t]["claim"] is None for t in released)
    assert all(f"task {t} returned to pending" in log for t in released)
    assert took < grace + 2.0, f"shutdown took {took:.1f}s with a {grace}s grace period"
    restart_and_finish(srv, ids)
    rows = {r["id"]: dict(r) for r in query(srv.data_dir, "SELECT * FROM tasks")}
    assert all(rows[t]["resumes"] == 0 for t in ids)  # a clean stop is not a crash


def test_second_sigterm_exits_at_once(tmp_path, servers):
    srv, ids = busy_server(servers, tmp_path / "data", grace=60.0)
    srv.signal(signal.SIGTERM)
    srv.wait_log("draining")
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=10) == 1  # far sooner than the 60 s grace
    assert "second signal, exiting now" in srv.log()
    restart_and_finish(srv, ids)


# -- backpressure ---------------------------------------------------------------------------------
def stored_files(settings) -> list[Path]:
    return [p for p in settings.files_dir.rglob("*") if p.is_file()]


def test_overload_answers_503_stores_nothing_and_recovers(tmp_path, start_service, http):
    settings = make_settings(tmp_path, max_pending=3)
    app = create_app(settings)
    client = app.test_client()  # the pool is not started yet: nothing drains
    for n in range(3):
        r = client.post("/api/tasks", data={"type": "document", "file": (io.BytesIO(page(n)), "p.png")})
        assert r.status_code == 202
    files = stored_files(settings)
    for n in (3, 4):
        r = client.post("/api/tasks", data={"type": "document", "file": (io.BytesIO(page(n)), "p.png")})
        assert r.status_code == 503 and r.json["error"]["code"] == "overloaded"
        assert int(r.headers["Retry-After"]) > 0
    r = client.post("/api/batches", data={"type": "document", "file": (io.BytesIO(page(5)), "p.png")})
    assert r.status_code == 503 and r.json["error"]["code"] == "overloaded"
    assert query(settings.data_dir, "SELECT count(*) FROM tasks")[0][0] == 3
    assert stored_files(settings) == files
    svc = start_service(app)  # the queue drains by itself ...
    until(lambda: query(settings.data_dir, "SELECT count(*) FROM tasks WHERE status = 'completed'")[0][0] == 3,
          60, "the backlog drained", interval=0.1)
    task_id = submit(http, svc.url, page(3))  # ... and the service takes work again
    assert wait_for(http, f"{svc.url}/api/tasks/{task_id}")["status"] == "completed"


def test_an_answer_from_the_cache_is_given_even_at_the_cap(tmp_path, start_service, http):
    settings = make_settings(tmp_path, max_pending=2)
    first = start_service(create_app(settings))
    done = submit(http, first.url, page(0))
    assert wait_for(http, f"{first.url}/api/tasks/{done}")["status"] == "completed"
    first.stop(grace=5)
    client = create_app(settings).test_client()  # the pool is not started: nothing drains

    def send(n):
        return client.post("/api/tasks", data={"type": "document", "file": (io.BytesIO(page(n)), "p.png")})
    assert [send(n).status_code for n in (1, 2)] == [202, 202]
    assert send(3).json["error"]["code"] == "overloaded"
    again = send(0)  # the same file again: no work is added, so the cap does not apply
    assert again.status_code == 202
    assert again.json["status"] == "completed" and again.json["result"]["cached"] is True
    assert query(settings.data_dir, "SELECT count(*) FROM tasks WHERE status = 'pending'")[0][0] == 2
    client.application.extensions["docproc"].db.close_all()


def test_one_tenant_at_its_cap_gets_429_others_go_on(tmp_path):
    settings = make_settings(tmp_path, max_pending=10, max_pending_per_tenant=2)
    app = create_app(settings)
    rt = app.extensions["docproc"]
    alice, bob = create_key(rt.db, "alice"), create_key(rt.db, "bob")
    client = app.test_client()

    def post_as(key, n):
        return client.post("/api/tasks", headers={"Authorization": f"Bearer {key}"},
                           data={"type": "document", "file": (io.BytesIO(page(n)), "p.png")})
    assert [post_as(alice, n).status_code for n in range(2)] == [202, 202]
    r = post_as(alice, 2)
    assert r.status_code == 429 and r.json["error"]["code"] == "too_many_pending" and r.headers["Retry-After"]
    assert post_as(bob, 3).status_code == 202
    assert dict(query(settings.data_dir, "SELECT tenant, count(*) FROM tasks GROUP BY tenant")) == {"alice": 2, "bob": 1}
    rt.db.close_all()


# -- one process per data dir -------------------------------------------------------------------
def test_second_service_on_the_same_data_dir_is_refused(tmp_path, start_service):
    settings = make_settings(tmp_path)
    start_service(create_app(settings))
    other = create_app(settings)
    with pytest.raises(DataDirBusy):
        Service(other).start()
    other.extensions["docproc"].db.close_all()


def test_pages_read_before_a_crash_are_not_read_again(tmp_path, servers, http):
    data = tmp_path / "data"
    srv = servers(data, DOCPROC_WORKERS="1", DOCPROC_OCR_CONCURRENCY="1").start()
    images = [draw_page([f"Section {n} of the report", "The quick brown fox jumps over the lazy dog"] * 6)
              for n in range(1, 7)]
    task_id = submit(http, srv.url, tiff_bytes(images), name="report.tif")

    def pages_kept() -> int:
        return query(data, "SELECT count(*) FROM task_pages WHERE task_id = ?", task_id)[0][0]
    until(lambda: pages_kept() >= 2, 60, "two pages read")
    srv.kill()
    kept = pages_kept()
    assert 2 <= kept < 6
    srv.start()
    until(lambda: query(data, "SELECT status FROM tasks WHERE id = ?", task_id)[0][0] == "completed", 120,
          "the task completed after the restart")
    srv.wait_log(f"task {task_id}: reusing the OCR of {kept} of 6 pages from an earlier attempt")
    result = json.loads(query(data, "SELECT result FROM tasks WHERE id = ?", task_id)[0][0])
    assert [f"Section {n} of the report" in p["text"] for n, p in enumerate(result["pages"], 1)] == [True] * 6
    assert srv.log().count(f"task {task_id}: reusing") == 1
