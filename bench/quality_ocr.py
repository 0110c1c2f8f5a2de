"""Pages of corpus files through the service's own reading pipeline, and raw tesseract, cached on disk.

The cache key is the file's hash plus a pipeline version: the tesseract version and a hash of the
source of every module that shapes OCR output, so editing the OCR code invalidates it by itself and
a cached figure always describes the code being measured. `--fresh` ignores the cache altogether.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from app import ocr, pages

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / "bench" / "out" / "quality-cache"
PDF_DPI = 150  # the service's default DOCPROC_PDF_DPI
# Every module whose code changes what a page reads as: decoding, PDF text layers and rendering, deskew,
# the passes.
_PIPELINE_SOURCES = ("app/ocr.py", "app/pages.py", "app/ocr_passes.py", "app/deskew.py", "app/pdf.py",
                     "app/pdf_forms.py", "app/textcheck.py", "bench/quality_ocr.py")


@dataclass
class Reading:
    """The pages of one file as the service reads them, and what reading them cost."""

    pages: list  # app.ocr.PageText
    seconds: float  # wall time of the read when it was made (also when served from the cache)
    cached: bool


def pipeline_version(engine: ocr.Tesseract) -> str:
    digest = hashlib.sha256(engine.version().encode())
    for name in _PIPELINE_SOURCES:
        path = REPO / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class Reader:
    """Reads files once per pipeline version; the results are kept as JSON under bench/out/."""

    def __init__(self, *, fresh: bool = False, cache_dir: Path = CACHE_DIR):
        self.engine = ocr.Tesseract(timeout=300)
        self.fresh = fresh
        self.cache_dir = cache_dir
        self.version = pipeline_version(self.engine)

    def read(self, path: Path) -> Reading:
        data = path.read_bytes()
        key = self._key("pages", data, self.version)
        hit = None if self.fresh else self._load(key)
        if hit is not None:
            return Reading([ocr.PageText.from_dict(p) for p in hit["pages"]], hit["seconds"], True)
        started = time.monotonic()
        media_type = pages.detect_media_type(data)
        info = pages.inspect_upload(data, max_pixels=10**9, max_pages=1000, pdf_dpi=PDF_DPI)
        read = [self.engine.read(pages.load_page(data, media_type, i, pdf_dpi=PDF_DPI)) for i in range(info.pages)]
        seconds = time.monotonic() - started
        self._store(key, {"pages": [p.to_dict() for p in read], "seconds": seconds})
        return Reading(read, seconds, False)

    def raw_text(self, path: Path) -> tuple[str, float]:
        """`tesseract FILE stdout` on the file itself: the baseline any user could run."""
        data = path.read_bytes()
        key = self._key("raw", data, self.version)  # re-measured with every pipeline version: same-run timings
        hit = None if self.fresh else self._load(key)
        if hit is not None:
            return hit["text"], hit["seconds"]
        started = time.monotonic()
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        text = subprocess.run(["tesseract", str(path), "stdout"], capture_output=True, text=True, env=env,
                              timeout=600, check=True).stdout
        seconds = time.monotonic() - started
        self._store(key, {"text": text, "seconds": seconds})
        return text, seconds

    def _key(self, what: str, data: bytes, version: str) -> str:
        return f"{what}-{hashlib.sha256(data).hexdigest()[:24]}-{version}"

    def _load(self, key: str) -> dict | None:
        try:
            return json.loads((self.cache_dir / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None

    def _store(self, key: str, record: dict) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(self.cache_dir / f"{key}.json")
