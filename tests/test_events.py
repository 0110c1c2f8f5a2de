"""GET /api/tasks/<id>/events: server-sent events over a real socket, arriving while the task runs."""
from __future__ import annotations

import io
import json
import uuid


from app import create_app
from conftest import llm_settings, make_settings
from drawing import draw_page, png_bytes, receipt_lines

ORDER = {"pending": 0, "processing": 1, "completed": 2, "failed": 2, "cancelled": 2}


def read_events(lines):
    """Yield ("comment", text) and (event name, parsed data) from an iterator of text lines."""
    name, data = None, []
    for line in lines:
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line.split(":", 1)[1].strip())
        elif line == "" and data:
            yield name or "message", json.loads("\n".join(data))
            name, data = None, []


def test_events_arrive_while_the_task_runs_and_the_stream_closes_at_the_end(tmp_path, fake, start_service, http):
    app = create_app(llm_settings(tmp_path, fake, sse_keepalive=0.2))
    service = start_service(app)
    fake.script([("delay", 1.5, ("default",))])  # the task sits in its extract stage for a while
    page = png_bytes(draw_page(receipt_lines()))
    task = http.post(f"{service.url}/api/process_document", files={"file": ("r.png", page, "image/png")},
                     timeout=30).json()
    url = f"{service.url}/api/tasks/{task['id']}"
    seen, comments, live_checks = [], 0, []
    with http.get(f"{url}/events", stream=True, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache"
        for name, data in read_events(response.iter_lines(decode_unicode=True)):
            if name == "comment":
                comments += 1
                continue
            seen.append((name, data))
            if name == "task" and data["stage"] == "extract":
                # Read while the fake LLM still holds the task: this event was not buffered until the end.
                live_checks.append(http.get(url, timeout=30).json()["status"])
        # iter_lines ended: the server closed the stream after the end event.
    names = [n for n, _ in seen]
    assert names[-1] == "end" and names.count("end") == 1 and set(names[:-1]) == {"task"}
    tasks = [d for n, d in seen if n == "task"]
    assert tasks[0]["id"] == task["id"]
    assert [ORDER[t["status"]] for t in tasks] == sorted(ORDER[t["status"]] for t in tasks)
    assert [t["progress"] for t in tasks] == sorted(t["progress"] for t in tasks)
    assert any(t["stage"].startswith("ocr") for t in tasks)
    assert live_checks == ["processing"]
    assert tasks[-1]["status"] == "completed" and tasks[-1]["result"]["extractor"] == "llm:fake-model"
    assert seen[-1][1] == {"id": task["id"], "status": "completed", "reason": "finished"}
    assert comments >= 1  # keep-alives while the extraction was waiting


def test_finished_task_gives_one_event_and_closes(client):
    page = png_bytes(draw_page(["Cancelled page"], size=(600, 300)))
    task = client.post("/api/tasks", data={"type": "document", "file": (io.BytesIO(page), "p.png")},
                       content_type="multipart/form-data").get_json()
    assert client.delete(f"/api/tasks/{task['id']}").status_code == 200
    with client.get(f"/api/tasks/{task['id']}/events") as response:
        events = list(read_events(response.get_data(as_text=True).split("\n")))
    assert [n for n, _ in events] == ["task", "end"]
    assert events[0][1]["status"] == "cancelled"
    assert events[1][1]["reason"] == "finished"


def test_unknown_task_is_404_before_any_stream(client):
    for task_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = client.get(f"/api/tasks/{task_id}/events")
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


def test_stream_is_bounded_in_time_and_in_number(tmp_path):
    app = create_app(make_settings(tmp_path, sse_max_seconds=0.3, sse_keepalive=0.1, http_threads=2))
    try:
        client = app.test_client()
        page = png_bytes(draw_page(["Waiting page"], size=(600, 300)))
        task = client.post("/api/tasks", data={"type": "document", "file": (io.BytesIO(page), "p.png")},
                           content_type="multipart/form-data").get_json()
        # No worker runs here: the task stays pending and the stream ends on its time limit.
        first = client.get(f"/api/tasks/{task['id']}/events", buffered=False)
        assert first.status_code == 200
        # One waiting slot for two HTTP threads: a second stream of the same tenant is refused while the first is open.
        second = client.get(f"/api/tasks/{task['id']}/events")
        assert second.status_code == 429 and second.get_json()["error"]["code"] == "too_many_streams"
        assert second.headers["Retry-After"]
        events = list(read_events(first.get_data(as_text=True).split("\n")))
        first.close()
        assert events[0][0] == "task" and events[0][1]["status"] == "pending"
        assert events[-1] == ("end", {"id": task["id"], "status": "pending", "reason": "timeout"})
        assert ("comment", "keep-alive") in events
        with client.get(f"/api/tasks/{task['id']}/events") as third:  # the slot came back on close
            assert third.status_code == 200
    finally:
        app.extensions["docproc"].db.close_all()
