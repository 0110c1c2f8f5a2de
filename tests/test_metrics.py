"""GET /metrics: per-app registries, task counters, gauges read at scrape time, histograms, LLM tokens."""
from __future__ import annotations

import io

import requests
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from conftest import llm_settings, make_settings, wait_for
from drawing import draw_page, png_bytes, receipt_lines


def scrape(get) -> dict:
    """{(sample name, frozen labels): value} from GET /metrics (Flask test client or requests)."""
    response = get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text if isinstance(response, requests.Response) else response.get_data(as_text=True)
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def submit(client, page: bytes, task_type: str = "document"):
    return client.post("/api/tasks", data={"type": task_type, "file": (io.BytesIO(page), "p.png")},
                       content_type="multipart/form-data")


def test_each_app_counts_in_its_own_registry(tmp_path):
    one = create_app(make_settings(tmp_path / "one"))
    two = create_app(make_settings(tmp_path / "two"))
    try:
        c1, c2 = one.test_client(), two.test_client()
        page = png_bytes(draw_page(["Metrics page"], size=(600, 300)))
        task = submit(c1, page).get_json()
        assert submit(c1, page, "form").status_code == 202
        s1 = scrape(c1.get)
        assert value(s1, "docproc_tasks_submitted_total", type="document") == 1
        assert value(s1, "docproc_tasks_submitted_total", type="form") == 1
        assert value(s1, "docproc_queue_depth") == 2  # read from the runtime at scrape time
        assert value(s1, "docproc_workers_busy") == 0
        assert value(s1, "docproc_accepting") == 1
        s2 = scrape(c2.get)
        assert value(s2, "docproc_tasks_submitted_total", type="document") == 0
        assert value(s2, "docproc_queue_depth") == 0

        assert c1.delete(f"/api/tasks/{task['id']}").status_code == 200
        s1 = scrape(c1.get)
        assert value(s1, "docproc_tasks_cancelled_total", type="document") == 1
        # Cancelled in the queue: it never waited for a worker, so no wait is observed.
        assert value(s1, "docproc_task_wait_seconds_count", type="document") == 0
    finally:
        for app in (one, two):
            app.extensions["docproc"].db.close_all()


def test_completed_and_failed_tasks_stages_waits_and_tokens(tmp_path, fake, start_service, http):
    app = create_app(llm_settings(tmp_path, fake))
    service = start_service(app)
    get = lambda path: http.get(service.url + path, timeout=30)  # noqa: E731
    page = png_bytes(draw_page(receipt_lines()))
    r = http.post(f"{service.url}/api/process_document", files={"file": ("r.png", page, "image/png")}, timeout=30)
    assert wait_for(http, service.url + r.headers["Location"])["status"] == "completed"
    fake.script([("status", 400)])  # an LLM 4xx is permanent: the next task fails
    r = http.post(f"{service.url}/api/process_form", files={"file": ("r.png", page, "image/png")}, timeout=30)
    failed = wait_for(http, service.url + r.headers["Location"])
    assert failed["status"] == "failed", failed

    s = scrape(get)
    assert value(s, "docproc_tasks_submitted_total", type="document") == 1
    assert value(s, "docproc_tasks_completed_total", type="document") == 1
    assert value(s, "docproc_tasks_failed_total", type="form") == 1
    assert value(s, "docproc_tasks_completed_total", type="form") == 0
    assert value(s, "docproc_task_wait_seconds_count", type="document") == 1
    assert value(s, "docproc_task_wait_seconds_count", type="form") == 1
    assert value(s, "docproc_stage_duration_seconds_count", type="document", stage="ocr") == 1
    assert value(s, "docproc_stage_duration_seconds_count", type="document", stage="extract") == 1
    assert value(s, "docproc_stage_duration_seconds_sum", type="document", stage="ocr") > 0
    # The failed task's OCR ran to its end; its extraction did not.
    assert value(s, "docproc_stage_duration_seconds_count", type="form", stage="ocr") == 1
    assert value(s, "docproc_stage_duration_seconds_count", type="form", stage="extract") == 0
    usage = [body["usage"] for status, body in fake.responses if status == 200]
    assert len(usage) == 1
    assert value(s, "docproc_llm_tokens_total", type="document", kind="prompt") == usage[0]["prompt_tokens"]
    assert value(s, "docproc_llm_tokens_total", type="document", kind="completion") == usage[0]["completion_tokens"]
    assert value(s, "docproc_llm_tokens_total", type="form", kind="prompt") == 0
    assert value(s, "docproc_workers") == app.extensions["docproc"].settings.effective_workers
    assert value(s, "docproc_workers_alive") == value(s, "docproc_workers")
    assert value(s, "docproc_queue_depth") == 0


def test_openmetrics_on_request(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).rstrip().endswith("# EOF")
