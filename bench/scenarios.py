"""The measurements; each returns plain numbers and run.py turns them into the table."""
from __future__ import annotations

import os
import platform
import resource
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import peer
from .client import call, closed_loop, percentile, run_batch, run_one, submit, ts, wait
from .service import ROOT, ServiceProcess, SystemCpu
from .timeline import Timeline

NO_CACHE = '{"no_cache": true}'


def machine() -> dict:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"cores": os.cpu_count() or 1, "cpu": model, "tesseract": version.replace("tesseract ", ""),
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}"}


def background_load(seconds: float = 1.0) -> float:
    """0..1: how busy the cores are before the benchmark starts (other work skews every figure)."""
    cpu = SystemCpu()
    time.sleep(seconds)
    return cpu.busy_since_last()


class OtherLoad:
    """CPU that processes outside this benchmark (and its children) used while it ran."""

    def __init__(self):
        self.start = (SystemCpu.busy_seconds(), _own_cpu_seconds(), time.perf_counter())

    def share(self) -> float:
        """0..1 of all cores, over the time since construction."""
        system, own, wall = SystemCpu.busy_seconds(), _own_cpu_seconds(), time.perf_counter()
        others = (system - self.start[0]) - (own - self.start[1])
        return max(0.0, others / ((wall - self.start[2]) * (os.cpu_count() or 1)))


def _own_cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# -- 1. OCR bound --------------------------------------------------------------------------
def raw_tesseract(paths: list[Path], procs: int) -> dict:
    """The tesseract CLI over the files, `procs` processes at a time, one OpenMP thread each."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def one(path: Path) -> None:
        # tsv: the same recognition and output the service asks pytesseract for.
        subprocess.run(["tesseract", str(path), "stdout", "-l", "eng", "tsv"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    one(paths[0])  # the model file into the page cache, as the service's warm-up does
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with ThreadPoolExecutor(procs) as ex:
        list(ex.map(one, paths))
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"pages": len(paths), "procs": procs, "seconds": seconds, "rate": len(paths) / seconds,
            "page_time": procs * seconds / len(paths), "cpu_per_page": cpu / len(paths),
            "rss_mb": after.ru_maxrss / 1024}


def through_service(svc: ServiceProcess, blobs: list[bytes], clients: int, **kwargs) -> dict:
    """The same pages as tasks: HTTP submit, long-poll to completed, `clients` at a time."""
    own = svc.own_cpu_seconds()
    start = time.time()
    outcomes = closed_loop(svc.url, blobs, clients, **{"options": NO_CACHE, **kwargs})
    seconds = max(o.done for o in outcomes) - start
    pages = [p for o in outcomes for p in o.task["result"]["pages"]]
    return {"tasks": len(blobs), "seconds": seconds, "rate": len(blobs) / seconds, "outcomes": outcomes,
            "own_cpu_ms": (svc.own_cpu_seconds() - own) / len(blobs) * 1000,
            "confidence": sum(p["confidence"] for p in pages) / len(pages), "start": start}


# -- 2. LLM-bound mix ------------------------------------------------------------------------
def llm_mix(workdir: Path, blobs: list[bytes], warm: bytes, *, llm_concurrency: int, delay: float,
            clients: int, ocr_rate: float) -> dict:
    """Single-page tasks against the loopback LLM that answers after `delay` seconds."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_llm import FakeLLM

    with FakeLLM(delay=delay) as llm:
        env = {"OPENAI_API_KEY": "bench-key", "OPENAI_BASE_URL": llm.base_url,
               "DOCPROC_LLM_CONCURRENCY": str(llm_concurrency)}
        with ServiceProcess(workdir, "llm-mix", env) as svc:
            first = run_one(svc.url, warm, options=NO_CACHE)
            timeline = Timeline(svc.pid, llm_waiting=lambda: len(llm.requests) - len(llm.responses)).start()
            run = through_service(svc, blobs, clients)
            timeline.stop()
            rss = svc.peak_rss_mb()
    if not first.task["result"]["extractor"].startswith("llm:") or len(llm.requests) < len(blobs) + 1:
        raise RuntimeError(f"the mix did not go through the LLM: {first.task['result']['extractor']}, "
                           f"{len(llm.requests)} calls for {len(blobs) + 1} tasks")
    end = run["start"] + run["seconds"]
    window = timeline.window(run["start"], end)
    both = sum(1 for s in window if s.ocr and s.llm)
    llm_busy = sum(1 for s in window if s.llm)
    ideal = min(ocr_rate, llm_concurrency / delay)
    return {**run, "ideal": ideal, "llm_concurrency": llm_concurrency, "delay": delay,
            "extractor": first.task["result"]["extractor"],
            "cpu": sum(s.cpu for s in window) / max(len(window), 1),
            "overlap": both / max(llm_busy, 1),
            "naive": (os.cpu_count() or 1) / (1 / ocr_rate * (os.cpu_count() or 1) + delay),
            "figure": timeline.render(run["start"], end, [o.done for o in run["outcomes"]]), "rss_mb": rss}


# -- 3. overhead, and the peer -------------------------------------------------------------------
def cached(svc: ServiceProcess, blob: bytes, count: int, clients: int) -> dict:
    """`count` submissions of a file whose result is cached: HTTP + intake + SQLite, no OCR."""
    run_one(svc.url, blob, options="{}")  # the one real run that fills the cache
    run = through_service(svc, [blob] * count, clients, options="{}")
    outcomes = run["outcomes"]
    assert all(o.task["result"].get("cached") for o in outcomes), "a submission missed the cache"
    submit_ms = [o.submit_latency * 1000 for o in outcomes]
    done_ms = [o.turnaround * 1000 for o in outcomes]
    return {**run, "submit_p50": percentile(submit_ms, 50), "submit_p99": percentile(submit_ms, 99),
            "done_p50": percentile(done_ms, 50), "done_p99": percentile(done_ms, 99)}


def cached_json(svc: ServiceProcess, blob: bytes, count: int, clients: int) -> dict:
    """The cached run again, each file as application/json with the image in base64 (no multipart parsing)."""
    run = through_service(svc, [blob] * count, clients, as_json=True, options={})
    assert all(o.task["result"].get("cached") for o in run["outcomes"]), "a JSON submission missed the cache"
    submit_ms = [o.submit_latency * 1000 for o in run["outcomes"]]
    return {**run, "submit_p50": percentile(submit_ms, 50), "submit_p99": percentile(submit_ms, 99)}


def cached_batches(svc: ServiceProcess, blob: bytes, count: int, clients: int, per_request: int) -> dict:
    """The cached tasks as POST /api/batches of `per_request` files (one task each), then one batch read each."""
    sizes = [min(per_request, count - i) for i in range(0, count, per_request)]
    own = svc.own_cpu_seconds()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients, thread_name_prefix="bench-client") as ex:
        batches = list(ex.map(lambda n: run_batch(svc.url, [blob] * n), sizes))
    seconds = time.perf_counter() - start
    tasks = [t for b in batches for t in b]
    assert len(tasks) == count and all(t["status"] == "completed" and t["result"].get("cached") for t in tasks), \
        "a batched task missed the cache"
    return {"tasks": count, "per_request": per_request, "requests": len(sizes), "seconds": seconds,
            "rate": count / seconds, "own_cpu_ms": (svc.own_cpu_seconds() - own) / count * 1000}


def queued_small(svc: ServiceProcess, path: Path, count: int, clients: int, procs: int) -> dict:
    """Small one-page tasks through the queue and the workers, against the CLI on the same file."""
    raw = raw_tesseract([path] * count, procs)
    run = through_service(svc, [path.read_bytes()] * count, clients)
    submit_ms = [o.submit_latency * 1000 for o in run["outcomes"]]
    done_ms = [o.turnaround * 1000 for o in run["outcomes"]]
    return {**run, "raw_rate": raw["rate"], "submit_p50": percentile(submit_ms, 50),
            "submit_p99": percentile(submit_ms, 99), "done_p50": percentile(done_ms, 50),
            "done_p99": percentile(done_ms, 99), "overhead_ms": (1 / run["rate"] - 1 / raw["rate"]) * procs * 1000}


def http_floor(svc: ServiceProcess, count: int, clients: int) -> dict:
    """The cheapest request the service answers (GET /api/health): the HTTP stack's own ceiling."""
    own = svc.own_cpu_seconds()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        codes = [status for status, _ in ex.map(lambda _: call(svc.url, "GET", "/api/health"), range(count))]
    seconds = time.perf_counter() - start
    assert codes.count(200) == count, "health did not answer 200"
    return {"requests": count, "rate": count / seconds, "own_cpu_ms": (svc.own_cpu_seconds() - own) / count * 1000}


def huey_peer(workdir: Path, jobs: int, workers: int, clients: int) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    return peer.run_jobs(workdir / "huey.sqlite3", workers, jobs, clients)


# -- 5. fairness ----------------------------------------------------------------------------------
def fairness(svc: ServiceProcess, pdf: bytes, pages: int, singles: list[bytes], page_time: float) -> dict:
    """One-page tasks submitted once a long PDF is being read: when do they finish?"""
    big, before, _ = submit(svc.url, pdf, filename="long.pdf", media_type="application/pdf", options=NO_CACHE)
    big = wait(svc.url, big, until=("processing",))
    with ThreadPoolExecutor(len(singles)) as ex:
        outcomes = list(ex.map(lambda b: run_one(svc.url, b, options=NO_CACHE), singles))
    big = wait(svc.url, big)
    turn = [o.turnaround for o in outcomes]
    pdf_seconds = ts(big["completed_at"]) - ts(big["created_at"])
    return {"pages": pages, "singles": len(singles), "page_time": page_time,
            "single_max": max(turn) / page_time, "single_mean": sum(turn) / len(turn) / page_time,
            "pdf": pdf_seconds / page_time, "pdf_rate": pages / (ts(big["completed_at"]) - ts(big["started_at"])),
            "pdf_status": big["status"]}


# -- 8. born-digital PDFs ------------------------------------------------------------------------
def text_layer(svc: ServiceProcess, born: bytes, scanned: bytes, pages: int) -> dict:
    """The same pages as a born-digital PDF (read from its text layer) and as a scan of it (OCR).

    Each is one task; the figure is the OCR stage's own time (from /metrics), so the extraction
    both share does not hide the difference; whole tasks are reported beside it.
    """
    def one(data: bytes) -> tuple[dict, float]:
        before = _stage_seconds(svc, "ocr")
        task, _, _ = submit(svc.url, data, filename="doc.pdf", media_type="application/pdf", options=NO_CACHE)
        task = wait(svc.url, task)
        return task, _stage_seconds(svc, "ocr") - before

    text_task, text_seconds = one(born)
    ocr_task, ocr_seconds = one(scanned)
    return {"pages": pages, "text_rate": pages / text_seconds, "ocr_rate": pages / ocr_seconds,
            "ratio": ocr_seconds / text_seconds,
            "text_task": ts(text_task["completed_at"]) - ts(text_task["started_at"]),
            "ocr_task": ts(ocr_task["completed_at"]) - ts(ocr_task["started_at"]),
            "sources": sorted({p["source"] for p in text_task["result"]["pages"]}),
            "ocr_sources": sorted({p["source"] for p in ocr_task["result"]["pages"]})}


def _stage_seconds(svc: ServiceProcess, stage: str) -> float:
    """Sum of the service's docproc_stage_duration_seconds for one stage, every task type."""
    status, body = call(svc.url, "GET", "/metrics")
    assert status == 200, status
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("docproc_stage_duration_seconds_sum{") and f'stage="{stage}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- 6. idle --------------------------------------------------------------------------------------
def idle(svc: ServiceProcess, blob: bytes, seconds: float, probes: int) -> dict:
    """CPU of a service with nothing to do, then how soon a lone task is claimed."""
    time.sleep(0.5)
    cpu = svc.cpu_seconds()
    start = time.perf_counter()
    time.sleep(seconds)
    used = (svc.cpu_seconds() - cpu) / (time.perf_counter() - start)
    ids = []
    for _ in range(probes):
        ids.append(run_one(svc.url, blob, options=NO_CACHE).id)
        time.sleep(0.05)  # each probe finds the service idle again
    pickups = [ms for ms in pickup_ms(svc, ids)]
    return {"seconds": seconds, "cpu": used, "threads": svc.threads(), "pickup_p50": percentile(pickups, 50),
            "pickup_max": max(pickups)}


def pickup_ms(svc: ServiceProcess, ids: list[str]) -> list[float]:
    """Claim time minus submit time, read from the service's database (the API rounds to ms)."""
    conn = sqlite3.connect(f"file:{svc.db_path}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(ids))
        rows = conn.execute(f"SELECT started_at - created_at FROM tasks WHERE id IN ({marks})", ids).fetchall()
    finally:
        conn.close()
    return [r[0] * 1000 for r in rows]
