"""Retention: the janitor deletes old files and tasks, never a file a live task or an upload still needs."""
from __future__ import annotations

import io
import os
import threading
import time

from app import create_app
from conftest import make_settings, wait_for
from drawing import draw_page, png_bytes
from server_process import query


def page(n: int) -> bytes:
    return png_bytes(draw_page([f"Retention page {n}", f"Total: ${n}.00"], size=(600, 200), font_size=28, margin=20))


def submit(client, data: bytes, **fields) -> str:
    r = client.post("/api/tasks", data={"type": "document", **fields, "file": (io.BytesIO(data), "p.png")})
    assert r.status_code == 202, r.json
    return r.json["id"]


class Clock:
    """Wall-clock seconds that move only when told: retention is about age, and the test says how old."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def on_disk(rt, data: bytes) -> bool:
    return rt.store.exists(rt.store.digest(data))


def test_files_of_finished_tasks_go_shared_and_pinned_files_stay(tmp_path):
    settings = make_settings(tmp_path, file_retention=0.5, task_retention=3600.0)
    clock = Clock()
    app = create_app(settings, clock=clock)
    rt, client = app.extensions["docproc"], app.test_client()  # workers not started: tasks stay where we put them
    shared, alone, uploading = page(1), page(2), page(3)
    finished_shared = submit(client, shared)
    finished_alone = submit(client, alone)
    finished_uploading = submit(client, uploading)
    for task_id in (finished_shared, finished_alone, finished_uploading):
        assert client.delete(f"/api/tasks/{task_id}").json["status"] == "cancelled"
    waiting = submit(client, shared)  # a pending task reads the same file as a finished one
    orphan_old = rt.store.path_for("ab" * 32)
    orphan_new = rt.store.path_for("cd" * 32)
    for orphan in (orphan_old, orphan_new):  # left by a crash between writing a file and its row
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"left behind")
    two_hours_ago = time.time() - 7200
    os.utime(orphan_old, (two_hours_ago, two_hours_ago))

    report = rt.pool.janitor.run_once()  # the finished tasks are younger than file_retention
    assert report["files_removed"] == 0 and on_disk(rt, alone) and on_disk(rt, shared)
    assert report["orphans_removed"] == 1 and not orphan_old.exists() and orphan_new.exists()

    clock.advance(0.6)
    # An upload of the same bytes is in flight: its file is pinned until its row commits.
    with rt.store.staged([uploading], rt.db.file_is_referenced):
        report = rt.pool.janitor.run_once()
        assert on_disk(rt, uploading)
    assert report["files_removed"] == 1 and not on_disk(rt, alone)
    assert on_disk(rt, shared)  # the pending task still needs it
    assert report["tasks_deleted"] == 0
    purged = dict(query(settings.data_dir, "SELECT id, files_purged FROM tasks"))
    assert purged == {finished_shared: 1, finished_alone: 1, finished_uploading: 1, waiting: 0}

    # Once the last reader is finished and old enough, the shared file goes too.
    assert client.delete(f"/api/tasks/{waiting}").status_code == 200
    clock.advance(0.6)
    assert rt.pool.janitor.run_once()["files_removed"] == 1
    assert not on_disk(rt, shared) and orphan_new.exists()
    assert query(settings.data_dir, "SELECT count(*) FROM tasks")[0][0] == 4  # task retention is longer
    rt.db.close_all()


def test_a_processing_task_keeps_its_file(tmp_path):
    settings = make_settings(tmp_path, file_retention=0.0)
    app = create_app(settings)
    rt, client = app.extensions["docproc"], app.test_client()
    data = page(4)
    done = submit(client, data)
    client.delete(f"/api/tasks/{done}")
    running = submit(client, data)
    now = time.time()
    assert rt.db.claim_task(running, "a-worker", now, now + 60, now + 60) is not None  # a worker holds it
    assert rt.pool.janitor.run_once()["files_removed"] == 0 and on_disk(rt, data)
    rt.db.close_all()


def test_finished_tasks_are_deleted_after_task_retention(tmp_path, start_service, http):
    settings = make_settings(tmp_path, file_retention=0.2, task_retention=1.0)
    clock = Clock()
    svc = start_service(create_app(settings, clock=clock))
    rt = svc.rt
    urls = []
    for n in (5, 6):
        r = http.post(svc.url + "/api/tasks", data={"type": "document"}, files={"file": ("p.png", page(n))})
        urls.append(svc.url + r.headers["Location"])
    tasks = [wait_for(http, url) for url in urls]
    assert all(t["status"] == "completed" for t in tasks)
    clock.advance(0.3)
    assert rt.pool.janitor.run_once()["files_removed"] == 2
    assert not any(on_disk(rt, page(n)) for n in (5, 6))
    assert http.get(urls[0]).json()["result"]["text"]  # the task and its result outlive its files
    clock.advance(0.8)
    assert rt.pool.janitor.run_once()["tasks_deleted"] == 2
    assert [http.get(url).status_code for url in urls] == [404, 404]
    assert query(settings.data_dir, "SELECT count(*) FROM task_files")[0][0] == 0
    assert [p for p in settings.files_dir.rglob("*") if p.is_file()] == []


def test_the_janitor_runs_on_its_own_and_stops_with_the_pool(tmp_path, start_service, http):
    settings = make_settings(tmp_path, file_retention=0.0, janitor_interval=0.1)
    svc = start_service(create_app(settings))
    r = http.post(svc.url + "/api/tasks", data={"type": "document"}, files={"file": ("p.png", page(7))})
    assert wait_for(http, svc.url + r.headers["Location"])["status"] == "completed"
    end = time.monotonic() + 30
    while on_disk(svc.rt, page(7)) and time.monotonic() < end:
        time.sleep(0.05)
    assert not on_disk(svc.rt, page(7))
    assert "docproc-janitor" in [t.name for t in threading.enumerate()]
    svc.stop(grace=5)
    assert "docproc-janitor" not in [t.name for t in threading.enumerate()]
