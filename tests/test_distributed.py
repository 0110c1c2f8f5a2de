"""The distributed mode's promises, end to end: two API processes and two Celery workers (real
subprocesses) on one PostgreSQL database and one Redis, with real tesseract and the real openai
client talking to the OpenAI-compatible test server.

Leases, the janitor and re-sending run on short settings so that each promise shows in seconds.
"""
from __future__ import annotations

import signal
import time

import pytest
import requests

from cluster import Cluster, WebhookReceiver
from drawing import draw_page, png_bytes, tiff_bytes
from fake_llm import FakeLLM

PAGE = (900, 300)
ENV = {
    "DOCPROC_LEASE_SECONDS": "5", "DOCPROC_JANITOR_INTERVAL": "0.5", "DOCPROC_REDISPATCH_AFTER": "2",
    "DOCPROC_RETRY_BASE_DELAY": "0.2", "DOCPROC_RETRY_MAX_DELAY": "5", "DOCPROC_TASK_TIMEOUT": "120",
    "DOCPROC_SHUTDOWN_GRACE": "1", "DOCPROC_ALLOW_PRIVATE_CALLBACKS": "1", "DOCPROC_WEBHOOK_BACKOFF": "0.2",
    "DOCPROC_RATE_LIMIT": "0", "DOCPROC_LLM_TIMEOUT": "10",
}
# One cluster for the module: under pytest-xdist (--dist loadgroup) the module stays on one worker.
pytestmark = [pytest.mark.distributed, pytest.mark.xdist_group("distributed")]


@pytest.fixture(scope="module")
def env(pg_template, redis_server, tmp_path_factory):
    """One cluster for the module; tests that kill or stop a worker start it again."""
    server, template = pg_template
    url = server.new_database(template)
    hooks = WebhookReceiver()
    llm = FakeLLM()
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), url, redis_server.url(redis_server.new_db()),
                      OPENAI_API_KEY="test-key", OPENAI_BASE_URL=llm.base_url, DOCPROC_LLM_MODEL="fake-model", **ENV)
    try:
        yield cluster.start(), hooks, llm, redis_server
    finally:
        cluster.stop()
        hooks.close()
        llm.close()
        server.drop_database(url)


def pages(n: int, label: str) -> bytes:
    return tiff_bytes([draw_page([f"{label} page {i + 1}", "Invoice number 4711", "Total 12.50"], size=PAGE)
                       for i in range(n)])


def submit(api, data: bytes, *, name="doc.tiff", priority=5, **options) -> str:
    import json

    r = requests.post(f"{api.url}/api/tasks", files={"file": (name, data)},
                      data={"type": "document", "priority": str(priority), "options": json.dumps(options)}, timeout=30)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def wait_done(api, task_id: str, timeout: float = 60.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        task = requests.get(f"{api.url}/api/tasks/{task_id}", params={"wait": 5}, timeout=30).json()
        if task["status"] in ("completed", "failed", "cancelled"):
            return task
    raise AssertionError(f"task {task_id} did not end within {timeout}s: {task}")


def revive(cluster: Cluster) -> None:
    for w in cluster.workers:
        if w.proc is None or w.proc.poll() is not None:
            w.start()


def test_a_worker_killed_mid_task_is_replaced_with_one_result_and_one_webhook(env):
    cluster, hooks, _, _ = env
    a, b = cluster.apis
    task_id = submit(a, pages(8, "killed"), callback_url=hooks.url, no_cache=True)
    holder = cluster.holder(task_id)
    cluster.wait_row(task_id, lambda r: r["stage"].startswith("ocr ") and not r["stage"].startswith("ocr 0/"))
    holder.kill()  # kill -9 mid-OCR
    task = wait_done(b, task_id)
    assert task["status"] == "completed" and task["resumes"] == 1
    assert [e["stage"] for e in task["errors"]] == ["recovery"]
    assert len(task["result"]["pages"]) == 8
    assert "reusing the OCR of" in cluster.logs()  # the survivor read only the pages still missing
    time.sleep(1.0)  # a second delivery, if any, would arrive within this
    assert hooks.received[task_id] == 1
    assert hooks.bodies[task_id]["status"] == "completed"
    deliveries = cluster.rows("SELECT delivered FROM webhook_deliveries WHERE task_id = %s", task_id)
    assert deliveries == [{"delivered": 1}]
    revive(cluster)


def test_a_worker_stopped_past_its_lease_writes_nothing_when_it_resumes(env):
    cluster, hooks, _, _ = env
    a, b = cluster.apis
    task_id = submit(a, pages(6, "stopped"), callback_url=hooks.url, no_cache=True)
    holder = cluster.holder(task_id)
    cluster.wait_row(task_id, lambda r: r["stage"].startswith("ocr ") and not r["stage"].startswith("ocr 0/"))
    holder.signal(signal.SIGSTOP)
    try:
        task = wait_done(b, task_id)  # the other worker takes it back once the lease ran out
        assert task["status"] == "completed" and task["resumes"] == 1
        ended = cluster.task(task_id)
    finally:
        holder.signal(signal.SIGCONT)
    holder.wait_log(f"task {task_id}: this attempt lost the task", timeout=30)
    assert cluster.task(task_id) == ended  # its late page, progress and finish matched no row
    assert hooks.received[task_id] == 1


def test_submit_on_one_api_long_poll_and_cancel_on_another(env):
    cluster, _, _, _ = env
    a, b = cluster.apis
    task_id = submit(a, pages(8, "cancelled"), no_cache=True)
    seen = requests.get(f"{b.url}/api/tasks/{task_id}", timeout=30).json()
    started = time.monotonic()
    changed = requests.get(f"{b.url}/api/tasks/{task_id}", params={"wait": 30}, timeout=60).json()
    assert time.monotonic() - started < 25  # woken by a change a worker made, not by the timeout
    assert (changed["status"], changed["stage"]) != (seen["status"], seen["stage"])
    cluster.wait_row(task_id, lambda r: r["status"] == "processing" and r["claim"] is not None)
    r = requests.delete(f"{b.url}/api/tasks/{task_id}", timeout=30)
    assert r.status_code == 202
    task = wait_done(b, task_id, timeout=30)
    assert task["status"] == "cancelled" and task["result"] is None
    read = int(task["stage"].split()[1].split("/")[0]) if task["stage"].startswith("ocr") else 0
    assert read < 8


def test_a_redis_restart_with_20_tasks_pending_loses_none_and_runs_none_twice(env):
    cluster, _, _, redis = env
    a, b = cluster.apis
    ids = [submit((a, b)[i % 2], png_bytes(draw_page([f"restart {i}", "Total 1.00"], size=PAGE)), name=f"r{i}.png",
                  no_cache=True) for i in range(20)]
    redis.restart()  # every message in Redis is gone; the workers reconnect
    for task_id in ids:
        assert wait_done(a, task_id, timeout=90)["status"] == "completed"
    logs = cluster.logs()
    for task_id in ids:
        assert logs.count(f"task {task_id} completed") == 1
        assert cluster.task(task_id)["attempts"] == 1


def test_a_transient_llm_failure_is_retried_without_ocr_again_or_a_held_worker(env):
    cluster, _, llm, _ = env
    a, b = cluster.apis
    llm.script([("status", 503, {"Retry-After": "3"})])
    task_id = submit(a, pages(1, "retried"), no_cache=True)
    cluster.wait_row(task_id, lambda r: r["status"] == "pending" and r["stage"] == "retry scheduled", timeout=30)
    # While it waits, no worker holds it: another task runs and ends first.
    other = submit(b, pages(1, "meanwhile"), no_cache=True)
    assert wait_done(b, other)["status"] == "completed"
    assert cluster.task(task_id)["status"] == "pending"
    task = wait_done(a, task_id)
    assert task["status"] == "completed" and task["attempts"] == 2
    assert task["errors"][0]["stage"] == "extract" and "503" in task["errors"][0]["message"]
    logs = cluster.logs()
    assert logs.count(f"task {task_id} started: type=document phase=ocr") == 1  # OCR ran once
    assert logs.count(f"task {task_id} started: type=document phase=extract") == 2


def test_a_priority_9_task_overtakes_a_queue_of_priority_0_ones(env):
    cluster, _, _, _ = env
    a, b = cluster.apis
    low = [submit(a, pages(1, f"low {i}"), priority=0, no_cache=True) for i in range(16)]
    high = submit(b, pages(1, "urgent"), priority=9, no_cache=True)
    for task_id in (*low, high):
        wait_done(a, task_id)
    started = {r["id"]: r["started_at"] for r in cluster.rows(
        "SELECT id, started_at FROM tasks WHERE id = ANY(%s)", [*low, high])}
    after = sum(started[t] > started[high] for t in low)
    # Up to four low ones were already running or held by the two workers (2 threads each).
    assert after >= 8, f"only {after} of 16 priority-0 tasks started after the priority-9 one"


def test_the_result_cache_holds_across_api_processes(env):
    cluster, _, _, _ = env
    a, b = cluster.apis
    data = pages(1, "cached once")
    first = wait_done(a, submit(a, data))
    r = requests.post(f"{b.url}/api/tasks", files={"file": ("again.tiff", data)}, data={"type": "document"}, timeout=30)
    again = r.json()
    assert r.status_code == 202 and again["status"] == "completed" and again["result"]["cached"] is True
    assert again["result"]["text"] == first["result"]["text"]


def test_sigterm_drains_a_worker_and_its_task_ends_elsewhere(env):
    cluster, _, _, _ = env
    a, b = cluster.apis
    task_id = submit(a, pages(10, "drained"), no_cache=True)
    holder = cluster.holder(task_id)
    cluster.wait_row(task_id, lambda r: r["stage"].startswith("ocr ") and not r["stage"].startswith("ocr 0/"))
    holder.signal(signal.SIGTERM)
    assert holder.wait(30) == 0  # within the grace period (1 s here) and the release
    assert "returned to pending" in holder.log()
    task = wait_done(b, task_id)
    assert task["status"] == "completed" and task["resumes"] == 0  # released, not lost: no lease ran out
    assert [e["stage"] for e in task["errors"]] == ["shutdown"]
    assert "reusing the OCR of" in cluster.logs()
    revive(cluster)
