"""The real service as a subprocess (`python run.py`), and what /proc says about it."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
_LISTENING = re.compile(r"listening on (http://[\d.]+:\d+)")


class ServiceProcess:
    """`python run.py` on its own data dir and a free port; stopped with SIGTERM like in production."""

    def __init__(self, workdir: Path, name: str, env: dict[str, str] | None = None):
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "service.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCPROC_", "OPENAI_"))}
        self.env.update({
            "DOCPROC_HOST": "127.0.0.1",
            "DOCPROC_PORT": "0",
            "DOCPROC_DATA_DIR": str(self.workdir / "data"),
            "DOCPROC_ALLOW_ANONYMOUS": "1",
            # The benchmark is the only client: per-client limits would measure the limiter, not the engine.
            "DOCPROC_RATE_LIMIT": "1000000",
            "DOCPROC_RATE_BURST": "1000000",
            "DOCPROC_MAX_PENDING": "100000",
            # Long-polls per tenant are capped at a quarter of the HTTP threads; the benchmark's one
            # tenant runs up to 16 clients that each long-poll.
            "DOCPROC_HTTP_THREADS": "64",
            **(env or {}),
        })
        self.db_path = self.workdir / "data" / "docproc.sqlite3"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> "ServiceProcess":
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "run.py"], cwd=ROOT, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            match = _LISTENING.search(self.log_path.read_text())
            if match:
                self.url = match.group(1)
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited at start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"service did not start within {timeout}s:\n{self.log_path.read_text()[-2000:]}")
        requests.get(self.url + "/api/health", timeout=10).raise_for_status()
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU of the service and of its finished children (the tesseract runs)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        return (utime + stime + cutime + cstime) / CLK_TCK

    def own_cpu_seconds(self) -> float:
        """User + system CPU of the service process alone (Python, HTTP, SQLite), without children."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def peak_rss_mb(self) -> float:
        """VmHWM: the most resident memory the service process has had so far."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def __enter__(self) -> "ServiceProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SystemCpu:
    """Busy share of all cores between two readings of /proc/stat."""

    def __init__(self):
        self._last = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values[:8]) - idle, sum(values[:8])

    @classmethod
    def busy_seconds(cls) -> float:
        """CPU seconds all cores spent busy since boot."""
        return cls._read()[0] / CLK_TCK

    def busy_since_last(self) -> float:
        """0..1: how busy the cores were since the previous call."""
        busy, total = self._read()
        d_busy, d_total = busy - self._last[0], total - self._last[1]
        self._last = (busy, total)
        return d_busy / d_total if d_total else 0.0
