"""A finished task's pages as documents: the searchable PDF and page previews, cached with the task.

Both show the page images the OCR read (after rotation and deskew), made again from the stored
upload: decoding and levelling are deterministic, so the image is the one the boxes refer to. The
searchable PDF lays each OCR page's invisible text layer, written by the same tesseract run as the
text, over that image; a page read from its own text layer is the original PDF page.
"""
from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass

import pypdfium2 as pdfium
from PIL import Image

from . import deskew, ocr, pdf
from .artifacts import TaskArtifacts
from .errors import BadInput
from .pages import PageReader, load_page

logger = logging.getLogger(__name__)

PREVIEW_WIDTH = 1000
MIN_PREVIEW_WIDTH, MAX_PREVIEW_WIDTH = 100, 2000
JPEG_QUALITY = 80  # page images in the searchable PDF: gray JPEG, as scanners write them


@dataclass
class _Page:
    record: dict  # the page as the result shows it
    data: bytes  # the upload it comes from
    media_type: str
    index: int  # in that upload
    number: int  # 1-based, across the task's files


class Documents:
    """Builds and caches what GET /api/tasks/<id>/pdf and /pages/<n> return."""

    def __init__(self, db, store, artifacts: TaskArtifacts, reader: PageReader):
        self.db = db
        self.store = store
        self.artifacts = artifacts
        self.reader = reader

    # -- page previews ---------------------------------------------------------------------
    def preview(self, row, number: int, width: int) -> bytes:
        """PNG of page `number` at `width` pixels (boxes scale by width / page width)."""
        path = self.artifacts.preview(row["id"], number, width)
        if path.exists():
            return path.read_bytes()
        page = self._pages(row)[self._check_number(row, number) - 1]
        image = self.page_image(page)
        height = max(1, round(image.height * width / image.width))
        buf = io.BytesIO()
        image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0).save(buf, "PNG", optimize=False)
        self._keep(path, buf.getvalue())
        return buf.getvalue()

    def page_image(self, page: _Page) -> Image.Image:
        """The page image as the OCR read it, or as the text layer's coordinates see it."""
        rec, budget, dpi = page.record, self.reader.engine.max_pixels, self.reader.pdf_dpi
        image = load_page(page.data, page.media_type, page.index, pdf_dpi=dpi, max_pixels=budget)
        if rec.get("source") != "pdf_text":
            image = ocr.prepare(image, max_pixels=budget)
            if rec.get("rotation"):
                image = image.rotate(-rec["rotation"], expand=True, fillcolor=255)
            if rec.get("deskew"):
                image = deskew.level(image, rec["deskew"])
        size = (rec.get("width") or image.width, rec.get("height") or image.height)
        if image.size != size:  # settings changed since (DPI, budget): keep the boxes true
            image = image.resize(size, Image.Resampling.LANCZOS)
        return image

    # -- searchable PDF ----------------------------------------------------------------------
    def searchable_pdf(self, row) -> bytes:
        """The document with an invisible text layer over every OCR page; a born-digital PDF as it came."""
        pages = self._pages(row)
        files = json.loads(row["input"])["files"]
        if len(files) == 1 and files[0]["media_type"] == "application/pdf" and all(
                p.record.get("source") == "pdf_text" for p in pages):
            return pages[0].data if pages else self._file(files[0]["sha256"])
        path = self.artifacts.searchable(row["id"])
        if path.exists():
            return path.read_bytes()
        layers = [self._layer(row, p) if p.record.get("source") != "pdf_text" else None for p in pages]
        images = [self._jpeg(self.page_image(p)) if layer is not None else None for p, layer in zip(pages, layers)]
        data = _compose(pages, layers, images)
        self._keep(path, data)
        return data

    def _keep(self, path, data: bytes) -> None:
        """Cache what was made; a full disk costs making it again next time, not the answer."""
        try:
            self.artifacts.write(path, data)
        except OSError as e:
            logger.warning("could not keep %s: %s", path.name, e)

    def _layer(self, row, page: _Page) -> bytes:
        # A task answered from the cache did no OCR itself: the task that did the same work has the layers.
        for task_id in [row["id"], *self.db.same_work(row["tenant"], row["content_hash"])]:
            path = self.artifacts.layer(task_id, page.number - 1)
            if path.exists():
                return path.read_bytes()
        raise BadInput(409, "pdf_not_available",
                       f"page {page.number} has no text layer (read before searchable PDFs were kept); "
                       "submit the file again with options.no_cache")

    @staticmethod
    def _jpeg(image: Image.Image) -> bytes:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=JPEG_QUALITY)
        return buf.getvalue()

    # -- the task's pages ----------------------------------------------------------------------
    def _pages(self, row) -> list[_Page]:
        if row["status"] != "completed" or not row["result"]:
            raise BadInput(409, "task_not_completed", f"the task is {row['status']}; its pages exist once it completed")
        if row["files_purged"]:
            raise BadInput(410, "files_expired", "the task's files were removed by retention (DOCPROC_FILE_RETENTION)")
        records = json.loads(row["result"]).get("pages") or []
        out, number = [], 0
        for f in json.loads(row["input"])["files"]:
            data = self._file(f["sha256"])
            for index in range(f["pages"]):
                if number < len(records):
                    out.append(_Page(records[number], data, f["media_type"], index, number + 1))
                number += 1
        return out

    def _check_number(self, row, number: int) -> int:
        count = len(json.loads(row["result"]).get("pages") or [])
        if not 1 <= number <= count:
            raise BadInput(404, "page_not_found", f"the task has pages 1 to {count}, not {number}")
        return number

    def _file(self, sha256: str) -> bytes:
        try:
            return self.store.read(sha256)
        except FileNotFoundError:
            raise BadInput(410, "files_expired", "the task's files were removed by retention") from None


def _compose(pages: list[_Page], layers: list[bytes | None], images: list[bytes | None]) -> bytes:
    """One PDF: original pages where the text layer was read, image plus tesseract's layer elsewhere."""
    with pdf.LOCK:
        out = pdfium.PdfDocument.new()
        sources: dict[int, pdfium.PdfDocument] = {}  # id of the upload's bytes -> open document
        try:
            for page, layer, jpeg in zip(pages, layers, images):
                if layer is None:
                    src = sources.get(id(page.data)) or sources.setdefault(id(page.data), pdfium.PdfDocument(page.data))
                    out.import_pages(src, [page.index])
                    continue
                text = pdfium.PdfDocument(layer)
                try:
                    width, height = text.get_page_size(0)
                    target = out.new_page(width, height)
                    picture = pdfium.PdfImage.new(out)
                    picture.load_jpeg(io.BytesIO(jpeg), inline=False)
                    picture.set_matrix(pdfium.PdfMatrix().scale(width, height))
                    target.insert_obj(picture)
                    target.insert_obj(text.page_as_xobject(0, out).as_pageobject())  # invisible text on top
                    target.gen_content()
                    target.close()
                finally:
                    text.close()
            buf = io.BytesIO()
            out.save(buf)
            return buf.getvalue()
        finally:
            for src in sources.values():
                src.close()
            out.close()
