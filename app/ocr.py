"""Page images to text with the real tesseract binary."""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field, fields

import pytesseract
from PIL import Image, ImageOps
from pytesseract import Output

from app import ocr_passes
from app.errors import PermanentError, TransientError

logger = logging.getLogger(__name__)

UPSCALE_BELOW = 600  # short side in px under which a page is enlarged for tesseract
UPSCALE_TARGET = 1000
MAX_TESSERACT_SIDE = 32767  # leptonica refuses anything wider or taller
WEAK_CONFIDENCE = 60.0
WEAK_WORDS = 3
MIN_OSD_CONFIDENCE = 2.0


def prepare(image: Image.Image) -> Image.Image:
    """Upright grayscale copy of a page, enlarged when it is too small for tesseract."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas are usually white paper; a plain convert would make them black.
        rgba = image.convert("RGBA")
        image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image.alpha_composite(rgba)
    image = image.convert("L")
    short, long = min(image.size), max(image.size)
    if 0 < short < UPSCALE_BELOW:
        factor = min(UPSCALE_TARGET / short, 8000 / long, 4.0)
        if factor > 1.05:
            image = image.resize((round(image.width * factor), round(image.height * factor)),
                                 Image.Resampling.BICUBIC)
    return image


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
        """The stored form (kept for retries), which from_dict reads back."""
        return asdict(self)

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
    """The tesseract binary through pytesseract: one run per upright page."""

    def __init__(self, *, timeout: float = 60.0, cmd: str | None = None):
        # One OpenMP thread per process: we parallelise across pages, and OpenMP
        # threads fighting over the cores make tesseract several times slower.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        if cmd:
            pytesseract.pytesseract.tesseract_cmd = cmd  # pytesseract only has a global
        self.timeout = timeout
        self._version: str | None = None
        self._languages: set[str] | None = None

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

    def read(self, image: Image.Image, lang: str = "eng", *, timeout: float | None = None) -> PageText:
        """OCR one page; turn it with OSD and read again only when the first pass is weak.

        timeout (seconds) shortens the per-run limit, e.g. to what is left of the task's deadline.
        """
        limit = self.timeout if timeout is None else max(min(self.timeout, timeout), 0.001)
        missing = set(lang.split("+")) - self.languages()
        if missing:
            raise PermanentError(f"OCR language not installed: {', '.join(sorted(missing))}", stage="ocr")
        image = prepare(image)
        if max(image.size) > MAX_TESSERACT_SIDE:
            raise PermanentError(f"page is {image.width}x{image.height} pixels, too big for tesseract", stage="ocr")
        first = self._recognise(image, lang, limit)
        kept, kept_image = first, image
        if first.confidence < WEAK_CONFIDENCE or first.word_count < WEAK_WORDS:
            angle = self._orientation(image, limit)
            if angle:
                # OSD's "rotate" is clockwise; PIL rotates counter-clockwise.
                turned = image.rotate(-angle, expand=True, fillcolor=255)
                second = self._recognise(turned, lang, limit)
                second.rotation = angle
                logger.debug("page turned %d degrees: score %.0f -> %.0f", angle, first.score, second.score)
                if second.score > first.score:
                    kept, kept_image = second, turned
        return ocr_passes.second_reading(lambda im: self._recognise(im, lang, limit), kept_image, kept)

    def _recognise(self, image: Image.Image, lang: str, limit: float) -> PageText:
        # Uncompressed TIFF: pytesseract would otherwise spend ~5% of the page time on PNG.
        image.format = "TIFF"
        data = self._call(pytesseract.image_to_data, image, lang=lang, output_type=Output.DICT,
                          timeout=limit, limit=limit)
        return _page_text(data, image.size)

    def _orientation(self, image: Image.Image, limit: float) -> int:
        osd = self._call(_osd_or_nothing, image, limit, limit=limit)
        angle = int(osd.get("rotate", 0)) % 360
        if angle in (90, 180, 270) and float(osd.get("orientation_conf", 0.0)) >= MIN_OSD_CONFIDENCE:
            return angle
        return 0

    def _call(self, func, *args, limit: float | None = None, **kwargs):
        try:
            return func(*args, **kwargs)
        except pytesseract.TesseractNotFoundError as e:
            raise TransientError(f"tesseract binary not found: {e}", stage="ocr") from None
        except pytesseract.TesseractError as e:
            raise TransientError(f"tesseract failed (status {e.status}): {e.message}", stage="ocr") from None
        except RuntimeError as e:
            if "timeout" in str(e).lower():
                raise TransientError(f"tesseract timed out after {limit or self.timeout:g}s", stage="ocr") from None
            raise TransientError(f"tesseract failed: {e}", stage="ocr") from None
        except (TypeError, ValueError) as e:
            raise PermanentError(f"page image cannot be processed: {e}", stage="ocr") from None
        except SystemExit as e:
            # pytesseract exits the process on a version string it cannot parse: a bad binary.
            raise TransientError(f"tesseract is not usable: {e}", stage="ocr") from None
        except OSError as e:
            # Writing the temporary image (disk full) or starting the process: not the page's fault.
            raise TransientError(f"tesseract could not run: {e}", stage="ocr") from None


def _osd_or_nothing(image: Image.Image, timeout: float) -> dict:
    try:
        return pytesseract.image_to_osd(image, output_type=Output.DICT,
                                        config="-c min_characters_to_try=20", timeout=timeout)
    except pytesseract.TesseractError as e:
        # OSD refuses pages with little text; the first reading then stands.
        logger.debug("osd gave no answer: %s", e.message)
        return {}


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
