"""Soak: 2,000 tasks from concurrent clients while others poll, against the real `run.py` process."""
from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from drawing import draw_page, png_bytes
from server_process import ServerProcess, query

TASKS = 2000
DISTINCT = 20  # every other task repeats one of these pages, so most of the work comes from the cache
FRESH_EVERY = 40  # ... except every 40th, sent with no_cache: real OCR under load
SUBMITTERS = 8
POLLERS = 4
MAX_RSS_MB = 1024


def tiny_page(n: int) -> bytes:
    return png_bytes(draw_page([f"Soak {n}"], size=(300, 80), font_size=24, margin=10))


@pytest.mark.soak
def test_soak_2000_tasks_no_5xx_none_lost_memory_bounded(tmp_path):
    data = tmp_path / "data"
    srv = ServerProcess(data, tmp_path / "server.log", DOCPROC_WORKERS="4", DOCPROC_OCR_CONCURRENCY="2",
                        DOCPROC_HTTP_THREADS="16").start()
    try:
        _soak(srv)
    finally:
        srv.kill()


def _soak(srv: ServerProcess) -> None:
    pages = [tiny_page(n) for n in range(DISTINCT)]
    plan: list[int] = []  # submission n sends page n % DISTINCT
    next_lock, statuses, ids = threading.Lock(), Counter(), []
    submitting = threading.Event()
    submitting.set()

    def take() -> int | None:
        with next_lock:
            return plan.pop(0) if plan else None

    def submitter() -> None:
        with requests.Session() as http:
            while (n := take()) is not None:
                fields = {"type": "document"}
                if n >= DISTINCT and n % FRESH_EVERY == 0:
                    fields["options"] = json.dumps({"no_cache": True})
                r = http.post(srv.url + "/api/tasks", data=fields, timeout=60,
                              files={"file": (f"p{n}.png", pages[n % DISTINCT], "image/png")})
                with next_lock:
                    statuses[("submit", r.status_code)] += 1
                    if r.status_code == 202:
                        ids.append(r.json()["id"])

    def poller(seed: int) -> None:
        rng = random.Random(seed)
        with requests.Session() as http:
            while submitting.is_set():
                with next_lock:
                    task_id = rng.choice(ids) if ids else None
                if task_id is None:
                    time.sleep(0.01)
                    continue
                roll = rng.random()
                if roll < 0.1:
                    r = http.get(srv.url + "/api/tasks", params={"limit": 50}, timeout=60)
                elif roll < 0.15:
                    r = http.get(srv.url + "/api/stats", timeout=60)
                else:
                    r = http.get(f"{srv.url}/api/tasks/{task_id}", params={"wait": rng.choice([0, 0, 1])}, timeout=60)
                with next_lock:
                    statuses[("poll", r.status_code)] += 1

    def settled(count: int, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            done = query(srv.data_dir, "SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed', 'cancelled')")
            if done[0][0] >= count:
                return
            time.sleep(0.1)

    began = time.monotonic()
    with ThreadPoolExecutor(SUBMITTERS + POLLERS) as pool:
        polls = [pool.submit(poller, seed) for seed in range(POLLERS)]
        # The distinct pages first and done, then the rest: repeats are served from the cache.
        for first, last, wait in ((0, DISTINCT, True), (DISTINCT, TASKS, False)):
            plan.extend(range(first, last))
            for f in [pool.submit(submitter) for _ in range(SUBMITTERS)]:
                f.result()
            if wait:
                settled(DISTINCT, 60)
        submitting.clear()
        for f in polls:
            f.result()
    submitted_in = time.monotonic() - began
    settled(TASKS, 120)
    rss_mb = srv.peak_rss_kb() / 1024
    rows = dict(query(srv.data_dir, "SELECT id, status FROM tasks"))
    cached = query(srv.data_dir, "SELECT count(*) FROM tasks WHERE json_extract(result, '$.cached') = 1")[0][0]
    print(f"\nsoak: {TASKS} tasks submitted in {submitted_in:.1f}s, {cached} from the cache, "
          f"{sum(n for (kind, _), n in statuses.items() if kind == 'poll')} polls, peak RSS {rss_mb:.0f} MB, "
          f"responses {dict(statuses)}")

    assert not [k for k in statuses if k[1] >= 500], statuses  # zero 5xx
    assert statuses[("submit", 202)] == TASKS and len(set(ids)) == TASKS
    assert set(rows) == set(ids)  # zero lost, zero extra
    assert Counter(rows.values()) == {"completed": TASKS}
    assert cached >= TASKS // 2  # the run really was mostly cache hits, as designed
    assert rss_mb < MAX_RSS_MB
    srv.signal(signal.SIGTERM)
    assert srv.wait(30) == 0
