"""A sampler thread: core use, tesseract processes of the service, LLM calls waiting, over time."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .service import SystemCpu


def tesseract_children(pid: int) -> int:
    """How many tesseract processes the service is running right now."""
    n = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # the process ended while we looked
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm == "tesseract" and int(rest[1]) == pid:
            n += 1
    return n


@dataclass
class Sample:
    t: float  # seconds since the sampler started
    cpu: float  # 0..1 busy share of all cores since the previous sample
    ocr: int  # tesseract processes of the service
    llm: int  # LLM calls waiting for an answer


@dataclass
class Timeline:
    """Samples every `interval` seconds until stopped."""

    pid: int
    llm_waiting: object = None  # () -> int
    interval: float = 0.2
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self) -> "Timeline":
        self.started = time.time()
        self._thread.start()
        return self

    def stop(self) -> "Timeline":
        self._stop.set()
        self._thread.join(5)
        return self

    def _run(self) -> None:
        cpu = SystemCpu()
        while not self._stop.wait(self.interval):
            self.samples.append(Sample(time.time() - self.started, cpu.busy_since_last(),
                                       tesseract_children(self.pid),
                                       self.llm_waiting() if self.llm_waiting else 0))

    def window(self, start: float, end: float) -> list[Sample]:
        """Samples between two Unix times."""
        return [s for s in self.samples if start - self.started <= s.t <= end - self.started]

    def render(self, start: float, end: float, done_times: list[float], buckets: int = 12) -> list[str]:
        """A small text figure: per time slice, core use, OCR running, LLM calls waiting, tasks done."""
        width = (end - start) / buckets
        lines = ["   time   cores busy                 tesseract  LLM waiting  done"]
        for b in range(buckets):
            lo, hi = start + b * width, start + (b + 1) * width
            part = self.window(lo, hi) or self.window(lo - self.interval, hi + self.interval)
            if not part:
                continue
            cpu = sum(s.cpu for s in part) / len(part)
            ocr = sum(s.ocr for s in part) / len(part)
            llm = sum(s.llm for s in part) / len(part)
            done = sum(1 for t in done_times if t <= hi)
            bar = "#" * round(cpu * 20)
            lines.append(f"  {lo - start:5.1f}s  {bar:<20} {cpu:4.0%}  {ocr:8.1f}  {llm:11.1f}  {done:4d}")
        return lines
