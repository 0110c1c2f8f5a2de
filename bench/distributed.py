"""`python -m bench.distributed`: the distributed mode (PostgreSQL + Celery over Redis), measured.

Each figure against a baseline taken in the same run on the same machine:
- scaling: tasks/s through one API process with one worker process, then with two, on a stub OCR
  engine of fixed cost (bench/stub_worker.py: it sleeps, so no core limits it and the ratio shows
  what the claims, messages, leases and notifications themselves scale to);
- OCR bound: real tesseract through one API and one worker (OCR slots = cores) against the raw
  tesseract CLI on all cores, the CLI run before and after (its mean is the baseline).
It starts throwaway PostgreSQL and Redis servers (tests/servers.py) and writes bench/DISTRIBUTED.md.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import corpus, scenarios
from .client import close_sessions, run_one
from .service import ROOT, ServiceProcess

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "DISTRIBUTED.md"
STUB_COST = 0.2  # seconds per page of the stub OCR
STUB_SLOTS = 2  # OCR slots per worker on the stub
READY = "ready: consuming"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class WorkerProcess:
    """One worker child (`docproc worker`, or the stub's entry point) and its log."""

    def __init__(self, workdir: Path, name: str, argv: list[str], env: dict[str, str]):
        self.log_path = workdir / f"{name}.log"
        self.argv, self.env = argv, env
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "WorkerProcess":
        with open(self.log_path, "w") as log_file:
            self.proc = subprocess.Popen([sys.executable, *self.argv], cwd=ROOT, env=self.env,
                                         stdout=log_file, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while READY not in self.log_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise RuntimeError(f"worker did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Cluster:
    """One API process and some workers on a fresh database and Redis database."""

    def __init__(self, workdir: Path, name: str, pg, redis, worker_argv: list[str], workers: int, env: dict):
        url = pg.new_database()
        self.pg, self.url = pg, url
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DOCPROC_", "OPENAI_"))}
        shared = {"DOCPROC_DATABASE_URL": url, "DOCPROC_BROKER_URL": redis.url(redis.new_db()),
                  "DOCPROC_RATE_LIMIT": "0", "DOCPROC_MAX_PENDING": "100000",
                  # Long-polls per tenant are a quarter of the HTTP threads: room for the 24 clients' waits.
                  "DOCPROC_HTTP_THREADS": "128", **env}
        self.api = ServiceProcess(workdir, name, env=shared)
        data = str(self.api.workdir / "data")
        self.workers = [WorkerProcess(self.api.workdir, f"worker{i}", worker_argv,
                                      {**base, **shared, "DOCPROC_DATA_DIR": data, "PYTHONUNBUFFERED": "1"})
                        for i in range(workers)]

    def __enter__(self) -> "Cluster":
        for w in self.workers:  # first: the API's health is degraded until a worker is seen
            w.start()
        self.api.start()
        return self

    def __exit__(self, *exc) -> None:
        for w in self.workers:
            w.stop()
        self.api.stop()
        self.pg.drop_database(self.url)


def stub_run(workdir: Path, pg, redis, workers: int, tasks: int, clients: int) -> dict:
    argv = ["-m", "bench.stub_worker", "--cost", str(STUB_COST), "--concurrency", str(2 * STUB_SLOTS)]
    blob = corpus.png_bytes(corpus.tiny_page())
    with Cluster(workdir, f"stub-{workers}", pg, redis, argv, workers,
                 {"DOCPROC_OCR_CONCURRENCY": str(STUB_SLOTS)}) as cluster:
        run_one(cluster.api.url, blob, options=scenarios.NO_CACHE)  # connections and caches warm
        # The same tiny file each time: no_cache keeps every task a full run through both queues.
        result = scenarios.through_service(cluster.api, [blob] * tasks, clients)
    result["ideal"] = workers * STUB_SLOTS / STUB_COST
    return result


def ocr_run(workdir: Path, pg, redis, pages: list[Path], clients: int) -> dict:
    cores = os.cpu_count() or 1
    argv = ["-m", "app.cli", "worker", "--concurrency", str(cores + 2)]
    warm = corpus.png_bytes(corpus.make_page(9999))
    with Cluster(workdir, "ocr", pg, redis, argv, 1, {"DOCPROC_OCR_CONCURRENCY": str(cores)}) as cluster:
        run_one(cluster.api.url, warm, options=scenarios.NO_CACHE)
        return scenarios.through_service(cluster.api, [p.read_bytes() for p in pages], clients)


def measure(workdir: Path, args) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    import servers

    reason = servers.available()
    if reason:
        raise SystemExit(f"bench.distributed: {reason}")
    cores = os.cpu_count() or 1
    out: dict = {"machine": scenarios.machine(), "background": scenarios.background_load()}
    others = scenarios.OtherLoad()
    pg, redis = servers.PostgresServer().start(), servers.RedisServer().start()
    try:
        for n in (1, 2):
            log(f"scaling: {args.tasks} tasks on the stub OCR ({STUB_COST:g} s a page, {STUB_SLOTS} slots a worker), "
                f"{n} worker(s)")
            out[f"stub{n}"] = stub_run(workdir, pg, redis, n, args.tasks, args.clients)
        log(f"OCR bound: {args.pages} pages, raw tesseract CLI on {cores} processes, then one worker, then raw again")
        pages = corpus.write_corpus(workdir / "corpus", args.pages)
        before = scenarios.raw_tesseract(pages, cores)
        out["ocr"] = ocr_run(workdir, pg, redis, pages, args.clients)
        after = scenarios.raw_tesseract(pages, cores)
        out["raw"] = {**before, "rates": (before["rate"], after["rate"]), "rate": (before["rate"] + after["rate"]) / 2}
    finally:
        redis.close()
        pg.stop()
    out["others"] = others.share()
    return out


def report(r: dict) -> str:
    m = r["machine"]
    one, two, ocr, raw = r["stub1"], r["stub2"], r["ocr"], r["raw"]
    scaling = two["rate"] / one["rate"]
    ocr_ratio = ocr["rate"] / raw["rate"]
    rows = [
        "| measure | docproc | baseline | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| tasks/s, 2 workers, stub OCR ({STUB_COST:g} s a page, {STUB_SLOTS} slots each), {two['tasks']} one-page "
        f"tasks | {two['rate']:.2f} (ideal {two['ideal']:.0f}) | {one['rate']:.2f} with 1 worker (ideal "
        f"{one['ideal']:.0f}) | {scaling:.2f} | ≥ 1.80 | {'yes' if scaling >= 1.8 else '**no**'} |",
        f"| OCR bound: pages/s, 1 API + 1 worker ({m['cores']} OCR slots), {ocr['tasks']} one-page tasks, "
        f"PostgreSQL + Redis on the same machine | {ocr['rate']:.2f} | {raw['rate']:.2f} raw `tesseract` CLI, "
        f"{raw['procs']} processes (mean of {raw['rates'][0]:.2f} before, {raw['rates'][1]:.2f} after) | "
        f"{ocr_ratio:.2f} | ≥ 0.85 | {'yes' if ocr_ratio >= 0.85 else '**no**'} |",
    ]
    line = (f"machine: {m['cores']} cores ({m['cpu'] or 'unknown CPU'}), tesseract {m['tesseract']}, "
            f"Python {m['python']}. Other processes kept the cores {r['background']:.0%} busy just before the run "
            f"and {r.get('others', 0):.0%} during it (0% = the figures are clean).")
    return "\n".join([line, "", *rows])


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m bench.distributed", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (about a minute); writes no results file")
    p.add_argument("--tasks", type=int, help="tasks in each stub run (default 160, quick 60)")
    p.add_argument("--pages", type=int, help="pages in the OCR-bound run (default 40, quick 16)")
    p.add_argument("--clients", type=int, default=24, help="concurrent HTTP clients")
    p.add_argument("--output", type=Path, help=f"results file (default {RESULTS.relative_to(HERE.parent)} for a full run)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    args.tasks = args.tasks or (60 if args.quick else 160)
    args.pages = args.pages or (16 if args.quick else 40)
    workdir = Path(tempfile.mkdtemp(prefix="docproc-bench-dist-"))
    started = time.perf_counter()
    try:
        text = report(measure(workdir, args))
    finally:
        close_sessions()
        shutil.rmtree(workdir, ignore_errors=True)
    print(text)
    output = args.output or (None if args.quick else RESULTS)
    if output is not None:
        notes = ""
        if output.exists() and "\n## Notes" in output.read_text():
            old = output.read_text()
            notes = old[old.index("\n## Notes"):]
        command = " ".join(["python -m bench.distributed", *(sys.argv[1:] if argv is None else argv)])
        output.write_text("# docproc distributed-mode benchmark\n\nGenerated by `python -m bench.distributed`"
                          f" (needs PostgreSQL and Redis installed; it starts its own). Last run: `{command}` on "
                          f"{time.strftime('%Y-%m-%d %H:%M')}.\n\n{text}\n{notes}")
        log(f"results written to {output}")
    log(f"done in {time.perf_counter() - started:.0f} s")
    return text


if __name__ == "__main__":
    main()
