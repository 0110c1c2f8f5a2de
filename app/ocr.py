"""Uploads to page images, and page images to text with the real tesseract binary."""
from __future__ import annotations

import io
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytesseract
from PIL import (
    BmpImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)
from pytesseract import Output

from app.errors import BadInput, PermanentError, TransientError

logger = logging.getLogger(__name__)

MIN_SIDE = 16
UPSCALE_BELOW = 600  # short side in px under which a page is enlarged for tesseract
UPSCALE_TARGET = 1000
MAX_TESSERACT_SIDE = 32767  # leptonica refuses anything wider or taller
WEAK_CONFIDENCE = 60.0
WEAK_WORDS = 3
MIN_OSD_CONFIDENCE = 2.0

# pdfium keeps global state and is not thread-safe, even across documents.
_PDFIUM_LOCK = threading.Lock()

# Plugin factories used directly instead of Image.open: Image.open runs Pillow's
# decompression-bomb check (a warning or an error) before we can look at the size.
_OPENERS = {
    "image/png": PngImagePlugin.PngImageFile,
    "image/jpeg": JpegImagePlugin.jpeg_factory,
    "image/tiff": TiffImagePlugin.TiffImageFile,
    "image/webp": WebPImagePlugin.WebPImageFile,
    "image/bmp": BmpImagePlugin.BmpImageFile,
}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError,
                  struct.error, zlib.error)
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}


def detect_media_type(data: bytes) -> str | None:
    """The media type named by the file's magic bytes, or None."""
    head = data[:32]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack("<I", head[14:18])[0] in _BMP_HEADER_SIZES:
        return "image/bmp"
    # The PDF spec tolerates junk before the header; readers look in the first 1 KiB.
    if b"%PDF-" in data[:1024]:
        return "application/pdf"
    return None


@dataclass
class UploadInfo:
    """What intake learned about a valid upload."""

    media_type: str
    pages: int


def inspect_upload(data: bytes, *, max_pixels: int, max_pages: int, pdf_dpi: int = 150) -> UploadInfo:
    """Validate an upload completely (decode every frame) or raise BadInput."""
    if not data:
        raise BadInput(400, "empty_file", "the file is empty")
    media_type = detect_media_type(data)
    if media_type is None:
        raise BadInput(415, "unsupported_media_type",
                       "unsupported file type: send PNG, JPEG, TIFF, WebP, BMP or PDF")
    if media_type == "application/pdf":
        pages = _inspect_pdf(data, max_pixels=max_pixels, max_pages=max_pages, dpi=pdf_dpi)
    else:
        pages = _inspect_image(data, media_type, max_pixels=max_pixels, max_pages=max_pages)
    return UploadInfo(media_type=media_type, pages=pages)


def _pixel_limit(max_pixels: int) -> int:
    # Above Pillow's own limit Pillow would warn while decoding; treat that as too large too.
    if Image.MAX_IMAGE_PIXELS is None:
        return max_pixels
    return min(max_pixels, Image.MAX_IMAGE_PIXELS)


def _check_size(width: float, height: float, limit: int, what: str) -> None:
    if width * height > limit:
        raise BadInput(400, "image_too_large",
                       f"{what} is {int(width)}x{int(height)} pixels, more than the limit of {limit} pixels")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise BadInput(400, "image_too_small",
                       f"{what} is {int(width)}x{int(height)} pixels; each side must be at least {MIN_SIDE}")


def _open_image(data: bytes, media_type: str) -> Image.Image:
    try:
        return _OPENERS[media_type](io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise BadInput(400, "image_too_large", str(e)) from None
    except _DECODE_ERRORS as e:
        raise BadInput(400, "corrupt_image", f"cannot read the image: {e}") from None


def _frame_count(im: Image.Image, media_type: str) -> int:
    # Only TIFF frames are pages; other formats' extra frames are animation.
    return getattr(im, "n_frames", 1) if media_type == "image/tiff" else 1


def _inspect_image(data: bytes, media_type: str, *, max_pixels: int, max_pages: int) -> int:
    limit = _pixel_limit(max_pixels)
    im = _open_image(data, media_type)
    try:
        try:
            frames = _frame_count(im, media_type)
        except _DECODE_ERRORS as e:
            raise BadInput(400, "corrupt_image", f"cannot read the image frames: {e}") from None
        if frames > max_pages:
            raise BadInput(413, "too_many_pages", f"the file has {frames} pages, the limit is {max_pages}")
        for index in range(frames):
            what = "the image" if frames == 1 else f"page {index + 1}"
            try:
                if index:
                    im.seek(index)
                _check_size(im.width, im.height, limit, what)  # header only: nothing decoded yet
                im.load()
            except Image.DecompressionBombError as e:
                raise BadInput(400, "image_too_large", str(e)) from None
            except _DECODE_ERRORS as e:
                raise BadInput(400, "corrupt_image", f"cannot decode {what}: {e}") from None
        return frames
    finally:
        im.close()


def _inspect_pdf(data: bytes, *, max_pixels: int, max_pages: int, dpi: int) -> int:
    scale = dpi / 72
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as e:
            # pypdfium2 reports a password-protected file the same way as a broken one.
            raise BadInput(400, "corrupt_pdf", f"cannot open the PDF: {e}") from None
        try:
            if pdfium_c.FPDF_GetSecurityHandlerRevision(pdf.raw) != -1:
                raise BadInput(400, "corrupt_pdf", "the PDF is encrypted")
            pages = len(pdf)
            if pages == 0:
                raise BadInput(400, "corrupt_pdf", "the PDF has no pages")
            if pages > max_pages:
                raise BadInput(413, "too_many_pages", f"the PDF has {pages} pages, the limit is {max_pages}")
            for index in range(pages):
                try:
                    width, height = pdf.get_page_size(index)
                except pdfium.PdfiumError as e:
                    raise BadInput(400, "corrupt_pdf", f"cannot read page {index + 1}: {e}") from None
                _check_size(width * scale, height * scale, max_pixels, f"page {index + 1} at {dpi} dpi")
            return pages
        finally:
            pdf.close()


def iter_pages(data: bytes, media_type: str, *, pdf_dpi: int = 150) -> Iterator[Image.Image]:
    """Yield the pages of an upload one at a time, so big PDFs need not sit in memory at once."""
    if media_type == "application/pdf":
        pdf = _open_pdf(data)
        try:
            for index in range(_pdf_len(pdf)):
                yield _render_pdf_page(pdf, index, pdf_dpi)
        finally:
            _close_pdf(pdf)
        return
    im = _open_for_pages(data, media_type)
    try:
        for index in range(_frame_count(im, media_type)):
            yield _image_frame(im, index)
    finally:
        im.close()


def load_pages(data: bytes, media_type: str, *, pdf_dpi: int = 150) -> list[Image.Image]:
    """Every page of an upload as a PIL image: TIFF frames split, PDF pages rendered at pdf_dpi."""
    return list(iter_pages(data, media_type, pdf_dpi=pdf_dpi))


def load_page(data: bytes, media_type: str, index: int, *, pdf_dpi: int = 150) -> Image.Image:
    """Page `index` (0-based) of an upload, decoding or rendering only that page."""
    if media_type == "application/pdf":
        pdf = _open_pdf(data)
        try:
            if not 0 <= index < _pdf_len(pdf):
                raise PermanentError(f"the PDF has no page {index + 1}", stage="ocr")
            return _render_pdf_page(pdf, index, pdf_dpi)
        finally:
            _close_pdf(pdf)
    im = _open_for_pages(data, media_type)
    try:
        if not 0 <= index < _frame_count(im, media_type):
            raise PermanentError(f"the image has no page {index + 1}", stage="ocr")
        return _image_frame(im, index)
    finally:
        im.close()


def _open_for_pages(data: bytes, media_type: str) -> Image.Image:
    if media_type not in _OPENERS:
        raise PermanentError(f"unsupported media type {media_type!r}", stage="ocr")
    try:
        return _OPENERS[media_type](io.BytesIO(data))
    except _DECODE_ERRORS as e:
        raise PermanentError(f"cannot read the image: {e}", stage="ocr") from None


def _image_frame(im: Image.Image, index: int) -> Image.Image:
    try:
        im.seek(index)
        im.load()
        # exif_transpose also copies: the page no longer needs the file.
        return ImageOps.exif_transpose(im)
    except _DECODE_ERRORS as e:
        raise PermanentError(f"cannot decode page {index + 1}: {e}", stage="ocr") from None


def _open_pdf(data: bytes) -> pdfium.PdfDocument:
    with _PDFIUM_LOCK:
        try:
            return pdfium.PdfDocument(data)
        except pdfium.PdfiumError as e:
            raise PermanentError(f"cannot open the PDF: {e}", stage="ocr") from None


def _pdf_len(pdf: pdfium.PdfDocument) -> int:
    with _PDFIUM_LOCK:
        return len(pdf)


def _close_pdf(pdf: pdfium.PdfDocument) -> None:
    with _PDFIUM_LOCK:
        pdf.close()


def _render_pdf_page(pdf: pdfium.PdfDocument, index: int, dpi: int) -> Image.Image:
    # Lock per page, not per document, so one long PDF does not stall the others.
    with _PDFIUM_LOCK:
        page = pdf[index]
        try:
            bitmap = page.render(scale=dpi / 72, grayscale=True)
            try:
                image = bitmap.to_pil()
                # to_pil() may share the bitmap's memory: copy before closing it.
                return image.copy() if image.mode == "L" else image.convert("L")
            finally:
                bitmap.close()
        except pdfium.PdfiumError as e:
            raise PermanentError(f"cannot render PDF page {index + 1}: {e}", stage="ocr") from None
        finally:
            page.close()


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
    """Text of one page; confidence is the mean word confidence, 0..100."""

    text: str
    confidence: float
    rotation: int  # degrees the page was turned clockwise before the kept reading
    words: int

    @property
    def score(self) -> float:
        return self.words * self.confidence


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
        if first.confidence >= WEAK_CONFIDENCE and first.words >= WEAK_WORDS:
            return first
        angle = self._orientation(image, limit)
        if not angle:
            return first
        # OSD's "rotate" is clockwise; PIL rotates counter-clockwise.
        second = self._recognise(image.rotate(-angle, expand=True, fillcolor=255), lang, limit)
        second.rotation = angle
        logger.debug("page turned %d degrees: score %.0f -> %.0f", angle, first.score, second.score)
        return second if second.score > first.score else first

    def _recognise(self, image: Image.Image, lang: str, limit: float) -> PageText:
        # Uncompressed TIFF: pytesseract would otherwise spend ~5% of the page time on PNG.
        image.format = "TIFF"
        data = self._call(pytesseract.image_to_data, image, lang=lang, output_type=Output.DICT,
                          timeout=limit, limit=limit)
        return _page_text(data)

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


def _page_text(data: dict) -> PageText:
    lines: list[str] = []
    confidences: list[float] = []
    current_line = current_par = None
    words_in_line: list[str] = []
    for i, word in enumerate(data["text"]):
        if int(data["level"][i]) != 5:
            continue
        word = str(word).strip()
        if not word:
            continue
        line_key = (data["page_num"][i], data["block_num"][i], data["par_num"][i], data["line_num"][i])
        if line_key != current_line:
            if words_in_line:
                lines.append(" ".join(words_in_line))
            words_in_line = []
            # A blank line between paragraphs, as image_to_string does.
            if current_par is not None and line_key[:3] != current_par:
                lines.append("")
            current_line, current_par = line_key, line_key[:3]
        words_in_line.append(word)
        conf = float(data["conf"][i])
        if conf >= 0:
            confidences.append(conf)
    if words_in_line:
        lines.append(" ".join(words_in_line))
    words = sum(len(line.split()) for line in lines)
    confidence = sum(confidences) / len(confidences) if confidences else 0.0
    return PageText(text="\n".join(lines), confidence=round(confidence, 2), rotation=0, words=words)
