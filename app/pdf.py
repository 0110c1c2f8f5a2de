"""PDFs through pdfium: opening with errors about this upload only, text layers, AcroForm values, rendering.

A page's text comes from its own text layer when that layer is real text (see `text_layer`);
otherwise the page is rendered (filled form fields drawn) and read by OCR.
"""
from __future__ import annotations

import ctypes
import math
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy
import pypdfium2 as pdfium
import pypdfium2.raw as c
from PIL import Image

from . import textcheck
from .pdf_forms import form_fields, line_of, with_field_values
from .errors import BadInput, PermanentError
from .ocr import PageText

# pdfium keeps global state (its last error among it) and is not thread-safe, even across documents.
LOCK = threading.Lock()

MIN_SIDE_PX = 16
FULL_TEXT_CHARS = 600  # visible characters that make a page of text (a stamp on a scan has a few dozen)
IMAGE_COVER = 0.5  # an image over this share of the page may be a scan: its ink is then checked
INK_OUTSIDE_TEXT = 0.25  # a page whose ink lies this much outside the text layer's boxes is read by OCR
GOOD_OCR_LAYER = 0.9  # an invisible (OCR) layer is kept when this share of its words look like words:
# clean text layers score 0.97 or more, tesseract's on a clean scan about as much, and ten misread
# characters in a hundred bring a text down to about 0.9
GOOD_TEXT = 0.5  # visible text below this share is a broken font encoding: read the page instead
_SAMPLE = 64  # characters sampled for their render mode
_HYPHENS = {0x02: "-", 0xFFFE: "-"}  # pdfium's marks for a hyphen that breaks a word

_LOAD_ERRORS = {
    c.FPDF_ERR_FILE: "the file could not be read as a PDF",
    c.FPDF_ERR_FORMAT: "the file is not a valid PDF (damaged or truncated)",
    c.FPDF_ERR_SECURITY: "the PDF uses an unsupported encryption",
    c.FPDF_ERR_PAGE: "the PDF's pages cannot be read",
}


class PdfProblem(Exception):
    """A PDF that cannot be read, with the error code clients see."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def scale_for(width_pt: float, height_pt: float, dpi: int, max_pixels: int | None) -> float:
    """Pixels per point: the DPI, lowered so that the page fits the pixel budget."""
    scale = dpi / 72
    if max_pixels and width_pt * height_pt * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / (width_pt * height_pt))
    # A hair less, so that a size that is whole (792 pt at 150 dpi: 1650 px) is not rounded up by float error.
    return scale * (1 - 1e-9)


@dataclass
class TextLayer:
    """What a page's own content says: its text (None when the page must be OCRed) and its form fields."""

    page: PageText | None
    form_fields: list


class Document:
    """One open PDF; every call takes pdfium's lock for itself, so one long PDF does not stall others."""

    def __init__(self, raw, data: bytes):
        self._data = data  # pdfium reads from this buffer for as long as the document is open
        self.pdf = pdfium.PdfDocument(raw)
        # Before any page is loaded, or filled form fields are not drawn.
        self.pdf.init_forms()

    def __len__(self) -> int:
        with LOCK:
            return len(self.pdf)

    def close(self) -> None:
        with LOCK:
            self.pdf.close()

    @contextmanager
    def _page(self, index: int):
        with LOCK:
            if not 0 <= index < len(self.pdf):
                raise PermanentError(f"the PDF has no page {index + 1}", stage="ocr")
            try:
                page = self.pdf[index]
            except pdfium.PdfiumError:
                raise PermanentError(f"page {index + 1} of the PDF cannot be read", stage="ocr") from None
            try:
                yield page
            finally:
                page.close()

    def render(self, index: int, dpi: int, *, max_pixels: int | None = None) -> Image.Image:
        """The page as a grayscale image with its form fields drawn, at dpi or less to fit max_pixels."""
        with self._page(index) as page:
            width, height = page.get_size()
            try:
                bitmap = page.render(scale=scale_for(width, height, dpi, max_pixels), grayscale=True,
                                     may_draw_forms=True)
            except pdfium.PdfiumError:
                raise PermanentError(f"page {index + 1} of the PDF cannot be rendered", stage="ocr") from None
            try:
                image = bitmap.to_pil()
                # to_pil() may share the bitmap's memory: copy before closing it.
                return image.copy() if image.mode == "L" else image.convert("L")
            finally:
                bitmap.close()

    def text_layer(self, index: int, dpi: int, *, max_pixels: int | None = None) -> TextLayer:
        """The page's text layer in pixels at the render scale, or page=None when OCR must read it."""
        with self._page(index) as page:
            width, height = page.get_size()
            scale = scale_for(width, height, dpi, max_pixels)
            size = (math.ceil(width * scale), math.ceil(height * scale))
            to_px = _PageToPixels(page, size)
            fields = form_fields(self.pdf, page, to_px)
            textpage = page.get_textpage()
            try:
                lines, sample_invisible = _text_lines(textpage, to_px)
            finally:
                textpage.close()
            if not _is_real_text(page, lines, sample_invisible, width * height, to_px):
                return TextLayer(None, fields)
        lines = with_field_values(lines, fields)
        text = "\n".join(line["text"] for line in lines)
        return TextLayer(PageText(text=text, confidence=100.0, source="pdf_text", width=size[0], height=size[1],
                                  lines=lines, form_fields=fields), fields)


@contextmanager
def open_document(data: bytes):
    """An open Document; PermanentError (stage ocr) when the PDF cannot be opened."""
    try:
        doc = _load(data)
    except PdfProblem as e:
        raise PermanentError(e.message, stage="ocr") from None
    try:
        yield doc
    finally:
        doc.close()


class SharedDocument:
    """One upload's PDF, opened at its first page read and kept open for the others: opening a
    document and its forms costs about as much as reading a page's text layer. The task that reads
    the pages owns it and calls close() when its reading ends; a page still being read then keeps it
    open until that page is done, and one read after close() opens the file for itself."""

    def __init__(self, data: bytes):
        self.data = data
        self._doc: Document | None = None
        self._users = 0
        self._closed = False
        self._lock = threading.Lock()

    @contextmanager
    def use(self):
        with self._lock:
            shared = not self._closed
            if shared:
                if self._doc is None:
                    try:
                        self._doc = _load(self.data)
                    except PdfProblem as e:
                        raise PermanentError(e.message, stage="ocr") from None
                self._users += 1
        if not shared:
            with open_document(self.data) as doc:
                yield doc
            return
        try:
            yield self._doc
        finally:
            self._release()

    def _release(self) -> None:
        with self._lock:
            self._users -= 1
            self._close_if_unused()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._close_if_unused()

    def _close_if_unused(self) -> None:
        if self._closed and self._users == 0 and self._doc is not None:
            self._doc.close()
            self._doc = None


def inspect(data: bytes, *, max_pages: int) -> int:
    """Page count of a PDF fit to process, or BadInput saying what is wrong with this one."""
    try:
        doc = _load(data)
    except PdfProblem as e:
        raise BadInput(400, e.code, e.message) from None
    try:
        with LOCK:
            pages = len(doc.pdf)
            if pages == 0:
                raise BadInput(400, "corrupt_pdf", "the PDF has no pages")
            if pages > max_pages:
                raise BadInput(413, "too_many_pages", f"the PDF has {pages} pages, the limit is {max_pages}")
            for index in range(pages):
                size = c.FS_SIZEF()
                if not c.FPDF_GetPageSizeByIndexF(doc.pdf, index, size):
                    raise BadInput(400, "corrupt_pdf", f"page {index + 1} of the PDF cannot be read")
                if min(size.width, size.height) * 150 / 72 < MIN_SIDE_PX:
                    raise BadInput(400, "image_too_small",
                                   f"page {index + 1} is {size.width:.1f}x{size.height:.1f} points, too small to read")
        return pages
    finally:
        doc.close()


def _load(data: bytes) -> Document:
    with LOCK:
        # pdfium reads the bytes in place (no copy per page); the Document keeps them alive.
        raw = c.FPDF_LoadMemDocument64(data, len(data), None)
        if not raw:
            # Read under the lock, right after this load failed: the reason is this file's.
            error = c.FPDF_GetLastError()
            if error == c.FPDF_ERR_PASSWORD:
                raise PdfProblem("pdf_password_protected", "the PDF is protected by a password; send it unlocked")
            raise PdfProblem("corrupt_pdf", _LOAD_ERRORS.get(error, "the PDF cannot be opened"))
        try:
            return Document(raw, data)
        except pdfium.PdfiumError:
            c.FPDF_CloseDocument(raw)
            raise PdfProblem("corrupt_pdf", "the PDF's forms cannot be read") from None


class _PageToPixels:
    """Page space (points, y up, unrotated) to rendered pixels (y down, /Rotate applied): one affine map."""

    def __init__(self, page, size: tuple[int, int]):
        def device(x: float, y: float) -> tuple[int, int]:
            dx, dy = ctypes.c_int(), ctypes.c_int()
            c.FPDF_PageToDevice(page, 0, 0, size[0], size[1], 0, x, y, dx, dy)
            return dx.value, dy.value

        # Sampled far apart so that the integer rounding of the device coordinates does not matter.
        (x0, y0), (x1, y1), (x2, y2) = device(0, 0), device(1000, 0), device(0, 1000)
        self._m = ((x1 - x0) / 1000, (x2 - x0) / 1000, x0, (y1 - y0) / 1000, (y2 - y0) / 1000, y0)
        self.size = size

    def box(self, left: float, bottom: float, right: float, top: float) -> list[int]:
        a, b, x0, d, e, y0 = self._m
        x1, x2 = a * left + b * bottom + x0, a * right + b * top + x0
        y1, y2 = d * left + e * bottom + y0, d * right + e * top + y0
        if x1 > x2:
            x1, x2 = x2, x1
        if y1 > y2:
            y1, y2 = y2, y1
        w, h = self.size
        return [max(0, math.floor(x1)), max(0, math.floor(y1)), min(w, math.ceil(x2)), min(h, math.ceil(y2))]


def _text_lines(textpage, to_px: _PageToPixels) -> tuple[list[dict], float]:
    """Lines of words with boxes, in the layer's own order; and the share of sampled characters drawn invisibly."""
    count = c.FPDFText_CountChars(textpage)
    if count <= 0:
        return [], 0.0
    buffer = (ctypes.c_ushort * (count + 1))()
    written = c.FPDFText_GetText(textpage, 0, count, buffer)
    if written - 1 == count:
        codes = buffer[:count]  # one UTF-16 unit per character: indexes agree
    else:
        codes = [c.FPDFText_GetUnicode(textpage, i) for i in range(count)]
    # One str character per pdfium character (a surrogate pair stays two, as pdfium counts it).
    text = "".join(map(chr, codes)).translate(_HYPHENS)
    rect = c.FS_RECTF()
    lines: list[dict] = []
    for line in _LINE.finditer(text):
        words = []
        for word in _WORD.finditer(text, line.start(), line.end()):
            first, last = word.start(), word.end() - 1
            c.FPDFText_GetLooseCharBox(textpage, first, rect)
            left, bottom, right, top = rect.left, rect.bottom, rect.right, rect.top
            c.FPDFText_GetLooseCharBox(textpage, last, rect)
            box = to_px.box(min(left, rect.left), min(bottom, rect.bottom), max(right, rect.right), max(top, rect.top))
            words.append({"text": _SURROGATES.sub(_pair, word.group()), "box": box, "confidence": 100.0})
        if words:
            lines.append(line_of(words))
    visible = [m.start() for m in _WORD.finditer(text)]
    sample = visible[:: max(1, len(visible) // _SAMPLE)][:_SAMPLE]
    invisible = sum(
        c.FPDFTextObj_GetTextRenderMode(c.FPDFText_GetTextObject(textpage, i)) == c.FPDF_TEXTRENDERMODE_INVISIBLE
        for i in sample)
    return lines, invisible / len(sample) if sample else 0.0


_LINE = re.compile(r"[^\r\n]+")
_WORD = re.compile(r"[^\s\x00-\x1f\u00a0\ufeff]+")
_SURROGATES = re.compile(r"[\ud800-\udbff][\udc00-\udfff]")


def _pair(match: re.Match) -> str:
    return match.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def _is_real_text(page, lines: list[dict], invisible_share: float, area: float, to_px: "_PageToPixels") -> bool:
    """Whether the layer is the page's text (born-digital, or a good OCR layer) rather than a scan to read."""
    text = " ".join(line["text"] for line in lines)
    if not text.strip():
        return False
    quality = textcheck.word_likeness(text)
    if invisible_share >= 0.5:
        # A layer nobody sees was made by OCR: keep it only when it reads like words.
        return quality >= GOOD_OCR_LAYER
    if quality < GOOD_TEXT:
        return False
    if sum(len(line["text"]) for line in lines) >= FULL_TEXT_CHARS:
        return True  # a page of visible text is the page, whatever lies under it
    # Some visible text over a page-sized image (a scan with a stamp or a page number added, or a
    # letterhead background): real when the text accounts for the ink on the page.
    return not _has_cover_image(page, area) or _ink_outside(page, lines, to_px) < INK_OUTSIDE_TEXT


def _ink_outside(page, lines: list[dict], to_px: "_PageToPixels") -> float:
    """Share of the page's dark pixels (rendered small) that no text box covers."""
    width, height = page.get_size()
    scale = 0.5  # 36 dpi: enough to see where ink is
    bitmap = page.render(scale=scale, grayscale=True, may_draw_forms=True)
    try:
        ink = numpy.asarray(bitmap.to_pil()) < 128
    finally:
        bitmap.close()
    total = int(ink.sum())
    if not total:
        return 0.0
    fx, fy = ink.shape[1] / to_px.size[0], ink.shape[0] / to_px.size[1]
    for line in lines:
        l, t, r, b = line["box"]
        pad = (b - t) * 0.5
        ink[max(0, int((t - pad) * fy)):int((b + pad) * fy) + 1, max(0, int((l - pad) * fx)):int((r + pad) * fx) + 1] = False
    return float(ink.sum()) / total


def _has_cover_image(page, area: float) -> bool:
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    for i in range(c.FPDFPage_CountObjects(page)):
        obj = c.FPDFPage_GetObject(page, i)
        if c.FPDFPageObj_GetType(obj) not in (c.FPDF_PAGEOBJ_IMAGE, c.FPDF_PAGEOBJ_FORM):
            continue
        if c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
            if (right.value - left.value) * (top.value - bottom.value) >= IMAGE_COVER * area:
                return True
    return False
