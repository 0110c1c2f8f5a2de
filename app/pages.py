"""Uploads to pages: what a file is, whether it is acceptable, and each page decoded, rendered or read."""
from __future__ import annotations

import io
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import (BmpImagePlugin, GifImagePlugin, Image, ImageOps, Jpeg2KImagePlugin, JpegImagePlugin, PngImagePlugin,
                 TiffImagePlugin, WebPImagePlugin)
from pillow_heif.as_plugin import HeifImageFile

from . import pdf
from .errors import BadInput, PermanentError
from .ocr import PageText

MIN_SIDE = 16

# Plugin factories used directly instead of Image.open: Image.open runs Pillow's
# decompression-bomb check (a warning or an error) before we can look at the size.
_OPENERS = {
    "image/png": PngImagePlugin.PngImageFile,
    "image/jpeg": JpegImagePlugin.jpeg_factory,
    "image/tiff": TiffImagePlugin.TiffImageFile,
    "image/webp": WebPImagePlugin.WebPImageFile,
    "image/bmp": BmpImagePlugin.BmpImageFile,
    "image/gif": GifImagePlugin.GifImageFile,
    "image/jp2": Jpeg2KImagePlugin.Jpeg2KImageFile,
    "image/heif": HeifImageFile,
}
SUPPORTED = "PNG, JPEG, TIFF (also BigTIFF), WebP, BMP, GIF, JPEG 2000, HEIC/HEIF or PDF"
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, RuntimeError,
                  struct.error, zlib.error)
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def detect_media_type(data: bytes) -> str | None:
    """The media type named by the file's magic bytes, or None."""
    head = data[:32]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic TIFF and BigTIFF
        return "image/tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack("<I", head[14:18])[0] in _BMP_HEADER_SIZES:
        return "image/bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "image/jp2"  # the JP2 container or a bare J2K codestream
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "image/heif"
    # The PDF spec tolerates junk before the header; readers look in the first 1 KiB.
    if b"%PDF-" in data[:1024]:
        return "application/pdf"
    return None


@dataclass
class UploadInfo:
    """What intake learned about a valid upload."""

    media_type: str
    pages: int


def inspect_upload(data: bytes, *, max_pixels: int, max_pages: int, pdf_dpi: int = 150,
                   keep: Callable[[int, Image.Image], None] | None = None) -> UploadInfo:
    """Validate an upload completely (decode every frame) or raise BadInput.

    max_pixels is the hard cap on one decoded image: a larger one is refused before it is
    decoded. PDF pages are rendered to fit the OCR budget instead, so only their count is limited.
    keep(index, frame) is shown each decoded image frame before it is closed (handoff.DecodedPages).
    """
    if not data:
        raise BadInput(400, "empty_file", "the file is empty")
    media_type = detect_media_type(data)
    if media_type is None:
        raise BadInput(415, "unsupported_media_type", f"unsupported file type: send {SUPPORTED}")
    if media_type == "application/pdf":
        pages = pdf.inspect(data, max_pages=max_pages)
    else:
        pages = _inspect_image(data, media_type, max_pixels=max_pixels, max_pages=max_pages, keep=keep)
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
    # Only TIFF frames are pages; other formats' extra frames are animation (GIF, WebP) or
    # alternatives (HEIF bursts, thumbnails): their first (primary) image is the page.
    return getattr(im, "n_frames", 1) if media_type == "image/tiff" else 1


def _inspect_image(data: bytes, media_type: str, *, max_pixels: int, max_pages: int, keep=None) -> int:
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
                if keep is not None:
                    keep(index, im)
            except Image.DecompressionBombError as e:
                raise BadInput(400, "image_too_large", str(e)) from None
            except _DECODE_ERRORS as e:
                raise BadInput(400, "corrupt_image", f"cannot decode {what}: {e}") from None
        return frames
    finally:
        im.close()


def load_page(data: bytes, media_type: str, index: int, *, pdf_dpi: int = 150,
              max_pixels: int | None = None) -> Image.Image:
    """Page `index` (0-based) of an upload as an upright image, decoding or rendering only that page.

    max_pixels (the OCR budget) lets a JPEG decode at a reduced scale and a PDF render at a
    lower resolution when the page would be larger; other images are scaled later, by OCR.
    """
    if media_type == "application/pdf":
        with pdf.open_document(data) as doc:
            return doc.render(index, pdf_dpi, max_pixels=max_pixels)
    im = _open_for_pages(data, media_type)
    try:
        if not 0 <= index < _frame_count(im, media_type):
            raise PermanentError(f"the image has no page {index + 1}", stage="ocr")
        return _image_frame(im, index, max_pixels)
    finally:
        im.close()


def _open_for_pages(data: bytes, media_type: str) -> Image.Image:
    if media_type not in _OPENERS:
        raise PermanentError(f"unsupported media type {media_type!r}", stage="ocr")
    try:
        return _OPENERS[media_type](io.BytesIO(data))
    except _DECODE_ERRORS as e:
        raise PermanentError(f"cannot read the image: {e}", stage="ocr") from None


def _image_frame(im: Image.Image, index: int, max_pixels: int | None) -> Image.Image:
    try:
        im.seek(index)
        if max_pixels and im.format == "JPEG" and im.width * im.height > max_pixels:
            # libjpeg decodes at 1/2, 1/4 or 1/8 for a fraction of the time and memory.
            factor = math.sqrt(max_pixels / (im.width * im.height))
            im.draft(im.mode, (math.ceil(im.width * factor), math.ceil(im.height * factor)))
        im.load()
        return upright(im)
    except _DECODE_ERRORS as e:
        raise PermanentError(f"cannot decode page {index + 1}: {e}", stage="ocr") from None


def upright(frame: Image.Image) -> Image.Image:
    """A decoded frame turned by its EXIF orientation; a copy, so the page no longer needs the file."""
    return ImageOps.exif_transpose(frame)


@dataclass(frozen=True)
class PageRef:
    """One page of one stored upload: what an OCR slot needs to read it."""

    data: bytes
    media_type: str
    index: int
    layer: Path | None = None  # where OCR writes the page's text-only PDF (the searchable PDF's layer)
    document: pdf.SharedDocument | None = None  # a PDF's pages share one open document (else each opens it)
    sha256: str | None = None  # the stored file's digest: the key of a page intake already decoded


class PageReader:
    """Reads one page: a PDF page's own text layer when it is real text, tesseract on the page image otherwise."""

    def __init__(self, engine, *, pdf_dpi: int = 150, decoded=None):
        self.engine = engine
        self.pdf_dpi = pdf_dpi
        self.decoded = decoded  # handoff.DecodedPages: images intake decoded in this process, or None

    def read(self, ref: PageRef, lang: str = "eng", *, timeout: float | None = None) -> PageText:
        budget = self.engine.max_pixels
        if ref.media_type != "application/pdf":
            image = None
            if self.decoded is not None and ref.sha256 is not None:
                image = self.decoded.take(ref.sha256, ref.index)
            if image is None:
                image = load_page(ref.data, ref.media_type, ref.index, max_pixels=budget)
            return self.engine.read(image, lang, timeout=timeout, layer=ref.layer)
        with (ref.document.use() if ref.document is not None else pdf.open_document(ref.data)) as doc:
            layer = doc.text_layer(ref.index, self.pdf_dpi, max_pixels=budget)
            if layer.page is not None:
                return layer.page
            image = doc.render(ref.index, self.pdf_dpi, max_pixels=budget)
        page = self.engine.read(image, lang, timeout=timeout, layer=ref.layer)
        page.form_fields = layer.form_fields
        return page
