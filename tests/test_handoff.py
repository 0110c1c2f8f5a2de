"""Pages decoded at intake are handed to the OCR slot of the same process: decoded once, read the same."""
from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops

from app import pages
from app.handoff import DecodedPages, held_bytes
from app.ocr import Tesseract
from app.pages import PageReader, PageRef
from conftest import make_settings, wait_for
import drawing
import inputs

PAGE = inputs.known_page()


def offered(data: bytes, decoded: DecodedPages, sha256: str = "f") -> int:
    return pages.inspect_upload(data, max_pixels=89_000_000, max_pages=10, keep=decoded.keeper(sha256)).pages


def tiff_of(frames: list[Image.Image]) -> bytes:
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, compression="group4", append_images=frames[1:])
    return buf.getvalue()


FILES = {
    "png": ("image/png", drawing.png_bytes(PAGE)),
    "jpeg turned by EXIF": ("image/jpeg", drawing.jpeg_bytes(PAGE, orientation=6)),
    "16-bit png": ("image/png", inputs.png16(PAGE, rgb=False, low=2500, high=62000)),
    "three-page G4 tiff": ("image/tiff", tiff_of([PAGE.convert("1"), PAGE.rotate(90, expand=True).convert("1"),
                                                  PAGE.convert("1")])),
    "gif": ("image/gif", inputs.save(PAGE, "GIF")),
}


@pytest.mark.parametrize("name", FILES)
def test_a_handed_over_page_is_the_page_the_slot_would_decode(name):
    media_type, data = FILES[name]
    decoded = DecodedPages(256 << 20, max_pixels=36_000_000)
    count = offered(data, decoded)
    assert decoded.held[0] == count
    for index in range(count):
        kept = decoded.take("f", index)
        own = pages.load_page(data, media_type, index, max_pixels=36_000_000)
        assert (kept.mode, kept.size) == (own.mode, own.size)
        assert ImageChops.difference(kept.convert("L"), own.convert("L")).getbbox() is None
        assert decoded.take("f", index) is None  # taken once
    assert decoded.held == (0, 0)


def test_held_pages_are_bounded_by_bytes_by_age_and_by_the_ocr_budget():
    now = [0.0]
    one = held_bytes(PAGE)
    decoded = DecodedPages(2 * one + 10, max_pixels=PAGE.width * PAGE.height, max_age=60, clock=lambda: now[0])
    data = drawing.png_bytes(PAGE)
    for sha in ("a", "b", "c"):
        offered(data, decoded, sha)
    assert decoded.held == (2, 2 * one)  # full: the newest is not kept, the two first are read first
    assert decoded.take("c", 0) is None and decoded.take("a", 0) is not None
    now[0] = 61.0
    offered(data, decoded, "d")  # "b" waited too long: it goes, "d" takes its place
    assert decoded.take("b", 0) is None and decoded.held == (1, one)
    decoded.discard("d")
    assert decoded.held == (0, 0)
    big = drawing.png_bytes(PAGE.resize((PAGE.width * 2, PAGE.height)))
    offered(big, decoded, "big")  # over the OCR budget: the slot decodes it reduced, so nothing is kept
    assert decoded.held == (0, 0)


def test_the_reader_reads_the_handed_over_page_without_decoding_the_file(tmp_path):
    engine = Tesseract()
    decoded = DecodedPages(64 << 20, max_pixels=engine.max_pixels)
    data = drawing.png_bytes(PAGE)
    offered(data, decoded, "sha")
    reader = PageReader(engine, decoded=decoded)
    # The stored bytes are not a picture at all: only the held page can give this reading.
    page = reader.read(PageRef(b"not an image", "image/png", 0, sha256="sha"))
    raw = inputs.raw_tesseract(data, tmp_path, "page.png")
    assert inputs.accuracy(page.text) >= inputs.accuracy(raw) - 0.01
    with pytest.raises(Exception):  # the page was taken: the next read decodes the bytes, which fails
        reader.read(PageRef(b"not an image", "image/png", 0, sha256="sha"))
    engine.close()


def test_the_embedded_service_decodes_each_upload_once_and_holds_nothing_after(tmp_path, start_service, http):
    from app import create_app

    settings = make_settings(tmp_path)
    service = start_service(create_app(settings))
    assert service.rt.decoded is not None
    data = drawing.png_bytes(PAGE)
    r = http.post(f"{service.url}/api/tasks", data={"type": "document"}, files={"file": ("page.png", data)})
    assert r.status_code == 202, r.text
    task = wait_for(http, f"{service.url}/api/tasks/{r.json()['id']}")
    assert task["status"] == "completed"
    assert inputs.accuracy(task["result"]["pages"][0]["text"]) >= 0.9
    assert service.rt.decoded.held == (0, 0)  # the slot took it
    # A refused submit (its second file is cut short) leaves nothing held of its first, good file.
    other = drawing.png_bytes(PAGE.rotate(1, fillcolor=255))
    bad = http.post(f"{service.url}/api/tasks", data={"type": "document"},
                    files=[("file", ("good.png", other)), ("file", ("cut.png", other[: len(other) // 2]))])
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "corrupt_image", bad.text
    assert service.rt.decoded.held == (0, 0)
    service.stop(grace=5)
    # After a restart the same file is decoded again at intake, then answered from the result cache:
    # the decoded page is let go at once.
    again = start_service(create_app(settings))
    r = http.post(f"{again.url}/api/tasks", data={"type": "document"}, files={"file": ("page.png", data)})
    assert r.json()["result"]["cached"], r.text
    assert again.rt.decoded.held == (0, 0)


def test_processes_that_do_not_read_pages_hold_none(tmp_path):
    from app import create_app

    off = create_app(make_settings(tmp_path / "off", decoded_handoff_mb=0)).extensions["docproc"]
    assert off.decoded is None
