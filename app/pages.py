"""Uploads to page images: what a file is, whether it is acceptable, and its pages decoded or rendered."""
from __future__ import annotations

import io
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import BmpImagePlugin, Image, ImageOps, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

from app.errors import BadInput, PermanentError

MIN_SIDE = 16

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
