"""The peer: the same no-op jobs through huey with its SQLite storage, consumer in its own process.

`python -m bench.peer DB WORKERS` runs the consumer (thread workers) until SIGTERM; the
benchmark process enqueues from concurrent clients and reads every result back.
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from huey import SqliteHuey

ROOT = Path(__file__).resolve().parent.parent


def make_huey(db_path: str):
    """The huey instance and its one task, the same in both processes."""
    huey = SqliteHuey("bench", filename=db_path)

    @huey.task(name="noop")
    def noop(n):
        return n

    return huey, noop


def start_consumer(db_path: Path, workers: int) -> subprocess.Popen:
    """The consumer as a subprocess; ready once it logged its start."""
    log_path = db_path.with_suffix(".log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bench.peer", str(db_path), str(workers)],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + 20
    while "consumer started" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            raise RuntimeError(f"huey consumer did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    return proc


def run_jobs(db_path: Path, workers: int, jobs: int, clients: int, *, closed: bool = False) -> dict:
    """Enqueue `jobs` no-ops from `clients` threads and read every result: jobs/s.

    Open loop (default, huey's best case): each client enqueues its share, then reads the
    results. Closed loop: each client waits for one result before enqueuing the next.
    """
    proc = start_consumer(db_path, workers)
    huey, noop = make_huey(str(db_path))
    try:
        noop(-1).get(blocking=True, timeout=30)  # warm: tables, connections, the worker threads

        def client(share: range) -> int:
            if closed:
                return sum(noop(n).get(blocking=True, timeout=120) == n for n in share)
            results = [(n, noop(n)) for n in share]
            return sum(r.get(blocking=True, timeout=120) == n for n, r in results)

        shares = [range(i, jobs, clients) for i in range(clients)]
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as ex:
            ok = sum(ex.map(client, shares))
        seconds = time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if ok != jobs:
        raise RuntimeError(f"huey returned {ok} of {jobs} results")
    return {"jobs": jobs, "seconds": seconds, "rate": jobs / seconds}


def _consume(db_path: str, workers: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    huey, _ = make_huey(db_path)
    # huey's own polling defaults; tuning them down changed nothing measurable here.
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=False)
    consumer.run()


if __name__ == "__main__":
    # Through the package, not __main__: huey names tasks by module, and both sides must agree.
    from bench.peer import _consume as consume

    consume(sys.argv[1], int(sys.argv[2]))
