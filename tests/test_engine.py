"""The task engine end to end: real app, real socket, real SQLite, real tesseract."""
from __future__ import annotations

import base64
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app import create_app
from conftest import db_rows, make_settings, wait_for
from drawing import draw_page, png_bytes, receipt_lines, tiff_bytes


@pytest.fixture(scope="module")
def small_page():
    return png_bytes(draw_page(["ACME Store", "Total: $12.00", "Date: 2024-03-15"], size=(900, 500), font_size=32))


def page_with(n: int) -> bytes:
    """Distinct small pages, so the result cache never joins two tasks."""
    return png_bytes(draw_page([f"Page number {n}", "Receipt", f"Total: ${n}.00"], size=(900, 400), font_size=32))


def post(http, url, data: bytes, **fields):
    return http.post(url + "/api/tasks", data={"type": "document", **fields},
                     files={"file": ("page.png", data, "image/png")}, timeout=30)


def test_submission_runs_to_completion(service, http, settings):
    page = png_bytes(draw_page(receipt_lines()))
    r = post(http, service.url, page, priority="7")
    assert r.status_code == 202
    body = r.json()
    assert r.headers["Location"] == f"/api/tasks/{body['id']}"
    assert body["status"] == "pending" and body["priority"] == 7 and body["type"] == "document"
    for key in ("id", "type", "status", "progress", "stage", "priority", "created_at", "started_at",
                "completed_at", "attempts", "errors", "result"):
        assert key in body
    task = wait_for(http, service.url + r.headers["Location"])
    assert task["status"] == "completed", task
    assert task["progress"] == 1 and task["stage"] == "done" and task["attempts"] == 1
    assert task["started_at"] and task["completed_at"] and task["errors"] == []
    result = task["result"]
    assert "total" in result["text"].lower()
    assert result["pages"][0]["page"] == 1 and result["pages"][0]["confidence"] > 50
    assert result["extractor"] == "local"
    assert set(result) >= {"title", "description", "tags", "kv", "text", "pages", "extractor"}
    # The same object under the legacy path, and the row really is in the SQLite file.
    assert http.get(f"{service.url}/api/task_status/{body['id']}").json()["status"] == "completed"
    (row,) = db_rows(settings, "SELECT status, result IS NOT NULL AS has FROM tasks WHERE id = ?", body["id"])
    assert row["status"] == "completed" and row["has"]


def test_json_submission_and_typed_paths(service, http, small_page):
    r = http.post(service.url + "/api/process_form",
                  json={"images": [base64.b64encode(small_page).decode()], "priority": 3})
    assert r.status_code == 202, r.text
    assert r.json()["type"] == "form"
    task = wait_for(http, service.url + r.headers["Location"])
    assert task["status"] == "completed" and "fields" in task["result"]
    r = http.post(service.url + "/api/tasks", json={"type": "document", "images": [base64.b64encode(small_page).decode()],
                                                   "options": {"lang": "eng", "no_cache": True}})
    assert r.status_code == 202 and r.json()["type"] == "document"


def test_identical_work_is_served_from_cache(service, http, small_page):
    first = wait_for(http, service.url + post(http, service.url, small_page).headers["Location"])
    assert first["status"] == "completed" and "cached" not in first["result"]
    r = post(http, service.url, small_page)
    assert r.status_code == 202
    second = r.json()
    assert second["status"] == "completed" and second["result"]["cached"] is True
    assert second["result"]["text"] == first["result"]["text"]
    fresh = wait_for(http, service.url + post(http, service.url, small_page, options='{"no_cache": true}').headers["Location"])
    assert fresh["status"] == "completed" and "cached" not in fresh["result"] and fresh["attempts"] == 1


def test_priorities_higher_first_fifo_within(tmp_path, start_service, http):
    app = create_app(make_settings(tmp_path, workers=1, ocr_concurrency=1))
    client = app.test_client()
    ids = {}
    order = [(2, "low-a"), (2, "low-b"), (9, "high"), (5, "mid"), (2, "low-c")]
    for n, (priority, name) in enumerate(order):
        r = client.post("/api/tasks", data={"type": "document", "priority": str(priority),
                                            "file": (__import__("io").BytesIO(page_with(n)), "p.png")})
        assert r.status_code == 202, r.json
        ids[name] = r.json["id"]
    service = start_service(app)
    tasks = {name: wait_for(http, f"{service.url}/api/tasks/{tid}") for name, tid in ids.items()}
    started = sorted(tasks, key=lambda name: tasks[name]["started_at"])
    assert started == ["high", "mid", "low-a", "low-b", "low-c"]


def test_cancel_pending_task_never_runs(tmp_path, start_service, http, small_page):
    app = create_app(make_settings(tmp_path))
    client = app.test_client()
    r = client.post("/api/tasks", data={"type": "document", "file": (__import__("io").BytesIO(small_page), "p.png")})
    task_id = r.json["id"]
    r = client.delete(f"/api/tasks/{task_id}")
    assert r.status_code == 200 and r.json["status"] == "cancelled"
    assert r.json["errors"][-1]["stage"] == "cancel"
    service = start_service(app)
    marker = wait_for(http, service.url + post(http, service.url, page_with(99)).headers["Location"])
    assert marker["status"] == "completed"  # the pool ran after the cancel
    task = http.get(f"{service.url}/api/tasks/{task_id}").json()
    assert task["status"] == "cancelled" and task["started_at"] is None and task["result"] is None
    r = http.delete(f"{service.url}/api/tasks/{task_id}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "task_finished"


def test_cancel_processing_task_stops_at_next_page(service, http):
    pages = [draw_page([f"Long document page {i}"] + receipt_lines()) for i in range(8)]
    r = http.post(service.url + "/api/tasks", data={"type": "document"},
                  files={"file": ("long.tiff", tiff_bytes(pages), "image/tiff")})
    url = service.url + r.headers["Location"]
    wait_for(http, url, statuses=("processing",))
    r = http.delete(url)
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    task = wait_for(http, url)
    assert task["status"] == "cancelled" and task["result"] is None
    assert task["errors"][-1]["message"] == "cancelled by the client"
    assert task["progress"] < 0.8  # stopped during OCR, before all 8 pages


def test_cancel_race_has_exactly_one_winner(service, http):
    urls = [service.url + post(http, service.url, page_with(100 + n)).headers["Location"] for n in range(12)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda u: http.delete(u).status_code, urls))
    finals = [wait_for(http, u) for u in urls]
    for code, task in zip(answers, finals):
        assert code in (200, 202, 409)
        if code == 200:
            assert task["status"] == "cancelled" and task["started_at"] is None
        if code == 409:
            assert task["status"] == "completed"
        if task["status"] == "cancelled":
            assert task["result"] is None
        else:
            assert task["status"] == "completed" and task["result"]["text"]


def test_restart_recovers_pending_and_interrupted_tasks(tmp_path, start_service, http):
    settings = make_settings(tmp_path, workers=1, ocr_concurrency=1)
    first = start_service(create_app(settings))
    pages = [draw_page([f"Slow page {i}"] + receipt_lines()) for i in range(4)]
    slow = http.post(first.url + "/api/tasks", data={"type": "document"},
                     files={"file": ("t.tiff", tiff_bytes(pages), "image/tiff")}).json()["id"]
    rest = [post(http, first.url, page_with(200 + n)).json()["id"] for n in range(5)]
    wait_for(http, f"{first.url}/api/tasks/{slow}", statuses=("processing",))
    released = first.stop(grace=0)
    assert slow in released
    rows = {r["id"]: r["status"] for r in db_rows(settings, "SELECT id, status FROM tasks")}
    assert rows[slow] == "pending" and all(rows[t] in ("pending", "completed") for t in rest)
    # A process that died mid-task leaves 'processing' behind: pretend one did.
    conn = sqlite3.connect(settings.db_path)
    conn.execute("UPDATE tasks SET status = 'processing', claim = 'dead', attempts = 1 WHERE id = ?", (rest[-1],))
    conn.commit()
    conn.close()
    second = start_service(create_app(settings))
    finals = {t: wait_for(http, f"{second.url}/api/tasks/{t}") for t in [slow, *rest]}
    assert all(t["status"] == "completed" for t in finals.values())
    assert finals[rest[-1]]["resumes"] == 1
    assert any(e["stage"] == "recovery" for e in finals[rest[-1]]["errors"])
    assert any(e["stage"] == "shutdown" for e in finals[slow]["errors"])
    (n,) = db_rows(settings, "SELECT count(*) AS n FROM tasks WHERE status = 'completed'")
    assert n["n"] == 6


def test_shutdown_respects_grace_period(tmp_path, start_service, http):
    settings = make_settings(tmp_path, workers=1, ocr_concurrency=1)
    service = start_service(create_app(settings))
    pages = [draw_page([f"Page {i}"] + receipt_lines()) for i in range(10)]
    task_id = http.post(service.url + "/api/tasks", data={"type": "document"},
                        files={"file": ("t.tiff", tiff_bytes(pages), "image/tiff")}).json()["id"]
    wait_for(http, f"{service.url}/api/tasks/{task_id}", statuses=("processing",))
    began = time.monotonic()
    released = service.stop(grace=0.5)
    assert time.monotonic() - began < 3.0
    assert released == [task_id]
    (row,) = db_rows(settings, "SELECT status, claim FROM tasks WHERE id = ?", task_id)
    assert row["status"] == "pending" and row["claim"] is None


def test_list_is_newest_first_and_paginates(service, http):
    ids = [post(http, service.url, page_with(300 + n)).json()["id"] for n in range(7)]
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = http.get(service.url + "/api/tasks", params=params).json()
        seen += [t["id"] for t in page["tasks"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    for t in ids:
        wait_for(http, f"{service.url}/api/tasks/{t}")
    done = http.get(service.url + "/api/tasks", params={"status": "completed", "type": "document"}).json()
    assert {t["id"] for t in done["tasks"]} == set(ids)
    assert http.get(service.url + "/api/tasks", params={"type": "form"}).json()["tasks"] == []


def test_batch_creates_one_task_per_file(service, http):
    files = [("file", (f"p{n}.png", page_with(400 + n), "image/png")) for n in range(3)]
    r = http.post(service.url + "/api/batches", data={"type": "document", "priority": "6"}, files=files)
    assert r.status_code == 202, r.text
    batch = r.json()
    assert len(batch["task_ids"]) == 3 and r.headers["Location"] == f"/api/batches/{batch['id']}"
    for t in batch["task_ids"]:
        wait_for(http, f"{service.url}/api/tasks/{t}")
    status = http.get(service.url + r.headers["Location"]).json()
    assert status["total"] == 3 and status["done"] is True and status["counts"]["completed"] == 3
    assert [t["id"] for t in status["tasks"]] == batch["task_ids"]
    assert all(t["batch_id"] == batch["id"] and t["priority"] == 6 for t in status["tasks"])


def test_health_and_stats(service, http, small_page):
    health = http.get(service.url + "/api/health").json()
    assert health["status"] == "ok" and health["workers"]["alive"] == 3
    assert health["tesseract"].startswith("5") or health["tesseract"][0].isdigit()
    wait_for(http, service.url + post(http, service.url, small_page).headers["Location"])
    stats = http.get(service.url + "/api/stats").json()
    assert stats["tasks"]["document"]["completed"] == 1
    assert stats["workers"]["total"] == 3 and stats["mean_run_seconds"] > 0
    assert stats["mean_wait_seconds"] >= 0


def test_long_poll_returns_on_change(service, http, small_page):
    url = service.url + post(http, service.url, page_with(500)).headers["Location"]
    began = time.monotonic()
    task = http.get(url, params={"wait": 30}).json()
    assert time.monotonic() - began < 20
    assert task["status"] in ("processing", "completed")
