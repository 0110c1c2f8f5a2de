"""`python -m bench.stub_worker --cost S [--concurrency N] [--queues ...]`: a real `docproc worker`
whose OCR engine is a stub taking a fixed S seconds per page (asleep, not on a core).

Only the benchmark uses it: with OCR of fixed cost that no core limits, tasks/s with one worker
against two shows what the distributed machinery itself scales to (claims, messages, leases),
which a 2-core machine running real tesseract cannot show.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from app import ocr
from app.engine.celery_worker import parse_queues, run_worker

_FIELDS = {f.name for f in dataclasses.fields(ocr.PageText)}


class FixedCostOcr:
    """The OCR engine's interface (read, version, languages) with a fixed cost per page."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def version(self) -> str:
        return "stub"

    def languages(self) -> set[str]:
        return {"eng"}

    max_pixels = None  # no OCR budget: pages are not scaled

    def read(self, image, lang: str = "eng", *, timeout: float | None = None, layer=None) -> ocr.PageText:
        time.sleep(self.seconds if timeout is None else max(min(self.seconds, timeout), 0.0))
        width, height = getattr(image, "size", (0, 0))
        values = {"text": "Stub page\nTotal 1.00", "confidence": 90.0, "rotation": 0, "words": 4,
                  "width": width, "height": height}
        return ocr.PageText(**{k: v for k, v in values.items() if k in _FIELDS})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stub_worker", description=__doc__.split("\n")[0])
    p.add_argument("--cost", type=float, required=True, help="seconds per page")
    p.add_argument("--concurrency", type=int, default=0)
    p.add_argument("--queues", default="ocr,extract")
    args = p.parse_args(argv)
    return run_worker(parse_queues(args.queues), args.concurrency, ocr_engine=FixedCostOcr(args.cost))


if __name__ == "__main__":
    sys.exit(main())
