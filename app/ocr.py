"""Page images to text with the real tesseract binary: preparation, one run per reading, its TSV and PDF layer."""
from __future__ import annotations

import errno
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import pytesseract
from PIL import Image, ImageOps

from app import deskew, ocr_passes
from app.errors import PermanentError, TransientError

logger = logging.getLogger(__name__)

UPSCALE_BELOW = 600  # short side in px under which a page is enlarged for tesseract
UPSCALE_TARGET = 1000
MAX_TESSERACT_SIDE = 32767  # leptonica refuses anything wider or taller
DEFAULT_MAX_PIXELS = 36_000_000  # the OCR budget: A4 at 600 dpi fits, A3 is read at about 430 dpi
WEAK_CONFIDENCE = 60.0
WEAK_WORDS = 3
MIN_OSD_CONFIDENCE = 2.0
HALT_SECONDS = 0.5  # how long an exit at once may spend making sure no run and no file is left
# What can succeed a moment later: a full disk, exhausted memory or processes, an interrupted call.
_PASSING_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE,
                   errno.EINTR, errno.EBUSY}
_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def prepare(image: Image.Image, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Upright 8-bit grayscale page, enlarged when too small and reduced to max_pixels when too big."""
    if image.getexif().get(0x0112, 1) != 1:  # EXIF orientation; exif_transpose copies even when upright
        image = ImageOps.exif_transpose(image)
    image = _to_gray(image)
    pixels = image.width * image.height
    factor = 1.0
    if max_pixels and pixels > max_pixels:
        factor = math.sqrt(max_pixels / pixels)
    factor = min(factor, MAX_TESSERACT_SIDE / max(image.size))
    short, long = min(image.size), max(image.size)
    if 0 < short < UPSCALE_BELOW:
        up = min(UPSCALE_TARGET / short, 8000 / long, 4.0)
        if up > 1.05:
            factor = up
    if factor < 1.0:
        size = (max(1, math.floor(image.width * factor)), max(1, math.floor(image.height * factor)))
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    elif factor > 1.0:
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC)
    return image


def _to_gray(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "L":
        return image
    if mode in _TRANSPARENT_MODES or (mode == "P" and "transparency" in image.info):
        # Transparent areas are usually white paper; a plain convert would make them black.
        rgba = image.convert("RGBA")
        image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image.alpha_composite(rgba)
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        # 16-bit, 32-bit and float samples: Pillow's convert clips them to 0..255, which turns a
        # 16-bit scan white. Stretch the range actually used instead (12-bit scanners use 0..4095).
        if mode.startswith("I;16"):
            image = image.convert("I")
        low, high = image.getextrema()
        if high <= low:
            return Image.new("L", image.size, 255)
        scale = 255.0 / (high - low)
        # + 0.5: rounded, not truncated, so a page stored as 16 bits from 8 gets its own values back
        return image.point(lambda v: (v - low) * scale + 0.5).convert("L")
    if mode not in ("1", "RGB", "P", "CMYK"):
        image = image.convert("RGB")  # YCbCr, LAB, HSV and friends go through RGB
    return image.convert("L")


@dataclass
class PageText:
    """The reading of one page: its text, confidence (mean word confidence, 0..100) and layout.

    Boxes are [left, top, right, bottom] in integer pixels of the page image as it was read
    (after rotation and deskew), origin top left; width and height are that image's size.
    """

    text: str
    confidence: float
    rotation: int = 0  # degrees the page was turned clockwise before the kept reading
    deskew: float = 0.0  # degrees of small-angle correction applied, counter-clockwise positive
    source: str = "ocr"  # "ocr" or "pdf_text"
    width: int = 0
    height: int = 0
    lines: list = field(default_factory=list)  # [{text, box, confidence, words: [{text, box, confidence}]}]
    form_fields: list = field(default_factory=list)  # filled PDF form fields: [{name, value, box}]

    @property
    def word_count(self) -> int:
        return sum(len(line["words"]) for line in self.lines)

    @property
    def score(self) -> float:
        return self.word_count * self.confidence

    def to_dict(self) -> dict:
        """The stored form (kept for retries), which from_dict reads back. Shallow: it is serialised at
        once (asdict's deep copy of every word cost more than the rest of storing a page)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "PageText":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def record(self, number: int, *, words: bool = False) -> dict:
        """The page as a task result shows it: lines without their words, words apart on request."""
        out = {"page": number, "text": self.text, "confidence": round(self.confidence, 1),
               "rotation": self.rotation, "deskew": self.deskew, "source": self.source,
               "width": self.width, "height": self.height,
               "lines": [{"text": ln["text"], "box": ln["box"], "confidence": ln["confidence"]} for ln in self.lines]}
        if self.form_fields:
            out["form_fields"] = self.form_fields
        if words:
            out["words"] = [{**w, "line": n} for n, ln in enumerate(self.lines) for w in ln["words"]]
        return out


class Tesseract:
    """The tesseract binary through pytesseract: one run per reading, with our own files.

    Each run writes its input into a private directory and removes it afterwards, so nothing
    is left in /tmp; `close()` removes the directory. A run may write, besides the TSV, a
    text-only PDF page (the invisible text layer of a searchable PDF) from the same recognition.
    """

    def __init__(self, *, timeout: float = 60.0, cmd: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        # One OpenMP thread per process: we parallelise across pages, and OpenMP
        # threads fighting over the cores make tesseract several times slower.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        if cmd:
            pytesseract.pytesseract.tesseract_cmd = cmd  # pytesseract only has a global
        self.timeout = timeout
        self.max_pixels = max_pixels
        self._version: str | None = None
        self._languages: set[str] | None = None
        self._workdir: Path | None = None
        self._workdir_lock = threading.Lock()
        self._closing = False

    def version(self) -> str:
        """The tesseract version, e.g. "5.3.0"."""
        if self._version is None:
            self._version = str(self._call(pytesseract.get_tesseract_version))
        return self._version

    def languages(self) -> set[str]:
        """Installed recognition languages (without the "osd" pseudo-language)."""
        if self._languages is None:
            self._languages = set(self._call(pytesseract.get_languages)) - {"osd"}
        return self._languages

    def halt(self, kill_runs: Callable[[], int]) -> None:
        """For a process about to exit at once: no run starts any more, the running ones are killed
        (kill_runs: how many it killed), then the files go.

        Killed before removed: a run still going would write its outputs into the emptied directory.
        A slot that passed the closing check a moment ago may still start one run, so this repeats
        until a round kills nothing and the directory is gone.
        """
        self._closing = True
        workdir = self._workdir
        end = time.monotonic() + HALT_SECONDS
        while True:
            killed = kill_runs()
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            if (not killed and (workdir is None or not workdir.exists())) or time.monotonic() > end:
                break
            time.sleep(0.02)
        self.close()

    def close(self) -> None:
        """Remove the private directory (runs still going lose their files and fail).

        Also called from a signal handler, which may have interrupted a thread holding the lock:
        it waits for the lock a moment only.
        """
        locked = self._workdir_lock.acquire(timeout=1.0)
        try:
            workdir, self._workdir = self._workdir, None
        finally:
            if locked:
                self._workdir_lock.release()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    def read(self, image: Image.Image, lang: str = "eng", *, timeout: float | None = None,
             layer: Path | None = None) -> PageText:
        """OCR one page; turn it with OSD and read again only when the first pass is weak.

        timeout (seconds) shortens the per-run limit, e.g. to what is left of the task's deadline.
        layer: where to write the kept reading's text-only PDF page (for the searchable PDF).
        """
        limit = self.timeout if timeout is None else max(min(self.timeout, timeout), 0.001)
        missing = set(lang.split("+")) - self.languages()
        if missing:
            raise PermanentError(f"OCR language not installed: {', '.join(sorted(missing))}", stage="ocr")
        image = prepare(image, max_pixels=self.max_pixels)
        first, first_pdf, first_image = self._recognise_level(image, lang, limit, layer is not None)
        kept, kept_pdf, kept_image = first, first_pdf, first_image
        if first.confidence < WEAK_CONFIDENCE or first.word_count < WEAK_WORDS:
            angle = self._orientation(image, limit)
            if angle:
                # OSD's "rotate" is clockwise; PIL rotates counter-clockwise.
                turned = image.rotate(-angle, expand=True, fillcolor=255)
                second, second_pdf, second_image = self._recognise_level(turned, lang, limit, layer is not None)
                second.rotation = angle
                logger.debug("page turned %d degrees: score %.0f -> %.0f", angle, first.score, second.score)
                if second.score > first.score:
                    kept, kept_pdf, kept_image = second, second_pdf, second_image
        layers = {id(kept): kept_pdf}

        def again(variant: Image.Image, psm: int | None = None) -> PageText:
            page, pdf = self._reading(variant, lang, limit, layer is not None, psm=psm)
            layers[id(page)] = pdf
            return page
        kept = ocr_passes.second_reading(again, kept_image, kept)
        if layer is not None:
            self._call(_write_atomically, layer, layers[id(kept)])  # a full disk is transient here too
        return kept

    def _recognise_level(self, image: Image.Image, lang: str, limit: float,
                         with_pdf: bool) -> tuple[PageText, bytes | None, Image.Image]:
        """One reading of the page after its small skew is levelled (the angle goes in `deskew`);
        also the image read."""
        angle = deskew.skew_angle(image)
        if angle:
            image = deskew.level(image, angle)
        page, pdf = self._reading(image, lang, limit, with_pdf)
        page.deskew = angle
        return page, pdf, image

    def _recognise(self, image: Image.Image, lang: str, limit: float, psm: int | None = None) -> PageText:
        """One tesseract run on the image as it is: its reading."""
        return self._reading(image, lang, limit, False, psm=psm)[0]

    def _reading(self, image: Image.Image, lang: str, limit: float, with_pdf: bool,
                 psm: int | None = None) -> tuple[PageText, bytes | None]:
        """One tesseract run: the reading, and with_pdf its text-only PDF page from the same run;
        psm: a page segmentation mode instead of tesseract's automatic layout analysis."""
        config = "-c tessedit_create_tsv=1 -c tessedit_create_txt=0" + (" -c textonly_pdf=1" if with_pdf else "")
        if psm is not None:
            config += f" --psm {int(psm)}"
        with self._files() as base:
            self._save_input(image, base)
            self._call(_run, base, "tsv pdf" if with_pdf else "tsv", lang, config, limit, limit=limit)
            data = _read_tsv(base.with_suffix(".tsv"))
            pdf = base.with_suffix(".pdf").read_bytes() if with_pdf else None
        return _page_text(data, image.size), pdf

    def _orientation(self, image: Image.Image, limit: float) -> int:
        with self._files() as base:
            self._save_input(image, base)
            try:
                self._call(_run, base, "osd", "osd", "--psm 0 -c min_characters_to_try=20", limit, limit=limit)
                osd = _read_osd(base.with_suffix(".osd"))
            except PermanentError as e:
                # OSD refuses pages with little text; the first reading then stands.
                logger.debug("osd gave no answer: %s", e.message)
                return 0
        angle = int(osd.get("Rotate", 0)) % 360
        if angle in (90, 180, 270) and float(osd.get("Orientation confidence", 0.0)) >= MIN_OSD_CONFIDENCE:
            return angle
        return 0

    def _save_input(self, image: Image.Image, base: Path) -> None:
        # Uncompressed TIFF is the cheapest to write and read. The compression is explicit because a
        # page decoded from a G4 scan still carries info["compression"] = "group4", which Pillow would
        # reuse, and libtiff refuses G4 for 8-bit data.
        self._call(image.save, base.with_suffix(".tif"), format="TIFF", compression="raw")
        self._check_open()  # again after the save, the moment before the run starts

    def _check_open(self) -> None:
        if self._closing:
            raise TransientError("OCR is stopping (the service shuts down)", stage="ocr")

    @contextmanager
    def _files(self):
        """A fresh base path in the private directory; every file named after it goes at the end."""
        with self._workdir_lock:
            self._check_open()  # a halted engine makes no new directory that nobody would remove
            if self._workdir is None or not self._workdir.is_dir():
                self._workdir = Path(tempfile.mkdtemp(prefix="docproc-ocr-"))
            base = self._workdir / uuid.uuid4().hex
        try:
            yield base
        finally:
            for suffix in (".tif", ".tsv", ".pdf", ".osd", ".txt"):
                try:
                    base.with_suffix(suffix).unlink()
                except OSError:
                    pass

    def _call(self, func, *args, limit: float | None = None, **kwargs):
        """Run one step; a fault that can pass is transient, a fault of the page or of ours is permanent."""
        try:
            return func(*args, **kwargs)
        except pytesseract.TesseractNotFoundError:
            raise PermanentError("the tesseract binary is not installed or not on PATH", stage="ocr") from None
        except pytesseract.TesseractError as e:
            if isinstance(e.status, int) and e.status < 0:
                # Killed by a signal: the OOM killer, a crash under memory pressure, a stop.
                raise TransientError(f"tesseract failed (killed by signal {-e.status}): {e.message}", stage="ocr") from None
            raise PermanentError(f"tesseract failed (status {e.status}): {e.message}", stage="ocr") from None
        except RuntimeError as e:
            if "timeout" in str(e).lower():
                raise TransientError(f"tesseract timed out after {limit or self.timeout:g}s", stage="ocr") from None
            raise PermanentError(f"tesseract failed: {e}", stage="ocr") from None
        except (TypeError, ValueError) as e:
            raise PermanentError(f"page image cannot be processed: {e}", stage="ocr") from None
        except SystemExit as e:
            # pytesseract exits the process on a version string it cannot parse: a bad binary.
            raise PermanentError(f"tesseract is not usable: {e}", stage="ocr") from None
        except OSError as e:
            if e.errno in _PASSING_ERRNOS:
                raise TransientError(f"tesseract could not run: {e}", stage="ocr") from None
            # No errno (an encoder error) or one that will repeat (permissions, a missing directory).
            raise PermanentError(f"tesseract could not run: {e}", stage="ocr") from None


def _run(base: Path, extension: str, lang: str, config: str, timeout: float) -> None:
    # pytesseract.pytesseract.run_tesseract is the runner that image_to_data and friends wrap; we
    # call it so that one run writes both the TSV and the PDF layer, from and to files we own.
    # tests/test_ocr.py checks its signature, so an upgrade that changes it fails loudly.
    pytesseract.pytesseract.run_tesseract(str(base.with_suffix(".tif")), str(base), extension, lang, config,
                                          timeout=timeout)


def _read_tsv(path: Path) -> dict:
    """tesseract's TSV as columns (the shape pytesseract's image_to_data returns)."""
    rows = path.read_text(encoding="utf-8", errors="replace").split("\n")
    header = rows[0].split("\t")
    columns: dict[str, list] = {name: [] for name in header}
    for row in rows[1:]:
        cells = row.split("\t")
        if len(cells) < len(header) - 1:
            continue
        cells += [""] * (len(header) - len(cells))  # the text of the last row may be missing
        for name, cell in zip(header, cells):
            columns[name].append(cell)
    return columns


def _read_osd(path: Path) -> dict:
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _write_atomically(path: Path, data: bytes | None) -> None:
    if data is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _page_text(data: dict, size: tuple[int, int]) -> PageText:
    """Lines and words with boxes from tesseract's TSV (as a dict of columns), in reading order."""
    lines: list[dict] = []
    new_paragraph: list[bool] = []
    confidences: list[float] = []
    current_line = None
    for i, word in enumerate(data["text"]):
        if int(data["level"][i]) != 5:
            continue
        word = str(word).strip()
        if not word:
            continue
        line_key = (data["page_num"][i], data["block_num"][i], data["par_num"][i], data["line_num"][i])
        if line_key != current_line:
            new_paragraph.append(current_line is not None and line_key[:3] != current_line[:3])
            lines.append({"text": "", "box": None, "confidence": 0.0, "words": []})
            current_line = line_key
        left, top = int(data["left"][i]), int(data["top"][i])
        box = [left, top, left + int(data["width"][i]), top + int(data["height"][i])]
        conf = float(data["conf"][i])
        lines[-1]["words"].append({"text": word, "box": box, "confidence": round(max(conf, 0.0), 1)})
        if conf >= 0:
            confidences.append(conf)
    text_lines: list[str] = []
    for line, starts_paragraph in zip(lines, new_paragraph):
        words = line["words"]
        line["text"] = " ".join(w["text"] for w in words)
        line["box"] = union_box([w["box"] for w in words])
        line["confidence"] = round(sum(w["confidence"] for w in words) / len(words), 1)
        if starts_paragraph:
            text_lines.append("")  # a blank line between paragraphs, as image_to_string does
        text_lines.append(line["text"])
    confidence = sum(confidences) / len(confidences) if confidences else 0.0
    return PageText(text="\n".join(text_lines), confidence=round(confidence, 2), width=size[0], height=size[1],
                    lines=lines)


def union_box(boxes: list[list[int]]) -> list[int]:
    """The smallest box holding every box given."""
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
