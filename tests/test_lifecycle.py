"""Every ending goes through finish() and is announced once: also the ones a start-up or a shutdown makes."""
from __future__ import annotations

import io
import time

from app import create_app
from conftest import make_settings, wait_for
from drawing import draw_page, png_bytes, receipt_lines, tiff_bytes


def submit(client, text: str) -> str:
    data = png_bytes(draw_page([text] + receipt_lines()))
    r = client.post("/api/tasks", data={"type": "document", "file": (io.BytesIO(data), "p.png")})
    assert r.status_code == 202, r.get_json()
    return r.get_json()["id"]


def test_tasks_a_dead_process_held_are_resumed_cancelled_or_given_up_and_announced(tmp_path, start_service, http):
    settings = make_settings(tmp_path, max_resumes=1)
    app = create_app(settings)
    rt, client = app.extensions["docproc"], app.test_client()
    resumed, cancelled, given_up = (submit(client, f"Held task {n}") for n in range(3))
    now = time.time()
    for task_id in (resumed, cancelled, given_up):  # a process claimed them, then died
        assert rt.db.claim_task(task_id, f"dead-{task_id}", now, now + 600, now + 600) is not None
    assert rt.db.request_cancel(cancelled, "anonymous", now)
    rt.db.database.write("UPDATE tasks SET resumes = 1 WHERE id = ?", (given_up,))
    ended = []
    rt.lifecycle.on_finished(lambda row: ended.append((row["id"], row["status"])))
    service = start_service(app)  # the data dir is ours: every lease in it has run out
    final = {t: wait_for(http, f"{service.url}/api/tasks/{t}") for t in (resumed, cancelled, given_up)}
    assert final[resumed]["status"] == "completed" and final[resumed]["resumes"] == 1
    assert final[cancelled]["status"] == "cancelled" and final[given_up]["status"] == "failed"
    assert sorted(ended) == sorted([(resumed, "completed"), (cancelled, "cancelled"), (given_up, "failed")])
    metrics = http.get(service.url + "/metrics").text
    assert 'docproc_tasks_cancelled_total{type="document"} 1.0' in metrics
    assert 'docproc_tasks_failed_total{type="document"} 1.0' in metrics


def test_a_task_cancelled_as_the_service_stops_ends_cancelled_and_is_announced_once(tmp_path, start_service, http):
    settings = make_settings(tmp_path, workers=1, ocr_concurrency=1)
    app = create_app(settings)
    rt = app.extensions["docproc"]
    ended = []
    rt.lifecycle.on_finished(ended.append)
    service = start_service(app)
    pages = [draw_page([f"Long page {i}"] + receipt_lines()) for i in range(6)]
    r = http.post(service.url + "/api/tasks", data={"type": "document"},
                  files={"file": ("t.tiff", tiff_bytes(pages), "image/tiff")})
    task_id = r.json()["id"]
    wait_for(http, f"{service.url}/api/tasks/{task_id}", statuses=("processing",))
    # The flag alone, as a cancel from another process whose notice has not arrived yet would leave it.
    assert rt.db.request_cancel(task_id, "anonymous", time.time())
    service.stop(grace=0)  # whichever ends it (its checkpoint or the release at shutdown) goes through finish()
    row = rt.db.get_task(task_id)
    assert row["status"] == "cancelled"
    assert [r["id"] for r in ended] == [task_id]
