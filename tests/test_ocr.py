"""OCR with the real tesseract binary on drawn pages, and upload validation."""
import io
from concurrent.futures import ThreadPoolExecutor

import pytesseract
import pytest
from PIL import Image

from app import ocr, pages
from app.errors import BadInput, PermanentError, TransientError
import drawing

LIMITS = {"max_pixels": 50_000_000, "max_pages": 10}


def all_pages(data: bytes, media_type: str, **kwargs) -> list[Image.Image]:
    count = pages.inspect_upload(data, **LIMITS).pages
    return [pages.load_page(data, media_type, i, **kwargs) for i in range(count)]


@pytest.fixture(scope="module")
def tesseract():
    return ocr.Tesseract(timeout=30)


@pytest.fixture(scope="module")
def receipt():
    return drawing.draw_page(drawing.receipt_lines())


@pytest.mark.parametrize("data, expected", [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 16, "image/png"),
    (b"\xff\xd8\xff\xe0" + b"\0" * 16, "image/jpeg"),
    (b"II*\x00" + b"\0" * 16, "image/tiff"),
    (b"MM\x00*" + b"\0" * 16, "image/tiff"),
    (b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 16, "image/webp"),
    (b"BM" + b"\0" * 12 + b"\x28\0\0\0" + b"\0" * 16, "image/bmp"),
    (b"%PDF-1.7\n", "application/pdf"),
    (b"BM but just text that starts like a bitmap", None),
    (b"hello, this is text", None),
    (b"", None),
])
def test_detect_media_type(data, expected):
    assert pages.detect_media_type(data) == expected


def test_reads_a_drawn_page(tesseract, receipt):
    page = tesseract.read(receipt)
    assert "ACME Store" in page.text
    assert "Total $32.50" in page.text
    assert "2024-03-15" in page.text
    assert page.text.splitlines()[0] == "ACME Store"
    assert page.confidence > 80
    assert page.word_count > 30
    assert page.rotation == 0


@pytest.mark.parametrize("degrees", [90, 180])
def test_rotated_page_is_turned_and_read(tesseract, receipt, degrees):
    page = tesseract.read(drawing.rotated(receipt, degrees))
    assert page.rotation == degrees
    assert "ACME Store" in page.text
    assert "$32.50" in page.text
    assert page.confidence > 80


def test_blank_page_gives_empty_text(tesseract):
    page = tesseract.read(Image.new("L", drawing.PAGE_SIZE, 255))
    assert (page.text, page.word_count, page.rotation, page.lines) == ("", 0, 0, [])


def test_multipage_tiff_is_split(tesseract, receipt):
    letter = drawing.draw_page(drawing.letter_lines())
    blank = Image.new("L", (400, 300), 255)
    data = drawing.tiff_bytes([receipt, letter, blank])
    assert pages.inspect_upload(data, **LIMITS) == pages.UploadInfo("image/tiff", 3)
    images = all_pages(data, "image/tiff")
    assert [p.size for p in images] == [drawing.PAGE_SIZE, drawing.PAGE_SIZE, (400, 300)]
    assert "Dear Mr. Smith" in tesseract.read(images[1]).text


def test_pdf_pages_are_rendered(tesseract, receipt):
    data = drawing.pdf_bytes([receipt, drawing.draw_page(drawing.letter_lines())])
    assert pages.inspect_upload(data, **LIMITS) == pages.UploadInfo("application/pdf", 2)
    images = all_pages(data, "application/pdf", pdf_dpi=150)
    assert len(images) == 2
    assert all(p.mode == "L" and abs(p.width - 1275) <= 2 for p in images)
    assert "ACME Store" in tesseract.read(images[0]).text
    assert "Dear Mr. Smith" in tesseract.read(images[1]).text
    # The DPI scales the rendering.
    assert abs(pages.load_page(data, "application/pdf", 0, pdf_dpi=75).width - 638) <= 2


def test_exif_orientation_is_applied(tesseract, receipt):
    # Pixels stored sideways; orientation 6 says "turn 90 degrees clockwise to view".
    data = drawing.jpeg_bytes(drawing.rotated(receipt, 90), orientation=6)
    assert pages.inspect_upload(data, **LIMITS) == pages.UploadInfo("image/jpeg", 1)
    page = pages.load_page(data, "image/jpeg", 0)
    assert page.size == drawing.PAGE_SIZE
    # prepare() does it too, for images that did not come through load_page.
    raw = Image.open(io.BytesIO(data))
    assert raw.size == (1650, 1275)
    assert ocr.prepare(raw).size == drawing.PAGE_SIZE
    text = tesseract.read(page)
    assert "ACME Store" in text.text and text.rotation == 0


def test_prepare_makes_small_pages_gray_and_bigger():
    small = ocr.prepare(Image.new("RGB", (300, 450), "white"))
    assert small.mode == "L" and small.size == (1000, 1500)
    big = ocr.prepare(Image.new("RGBA", drawing.PAGE_SIZE, (0, 0, 0, 0)))
    assert big.size == drawing.PAGE_SIZE and big.getpixel((5, 5)) == 255  # transparent is paper


def _png(size):
    return drawing.png_bytes(Image.new("L", size, 255))


@pytest.mark.parametrize("data, limits, status, code", [
    (b"", {}, 400, "empty_file"),
    (b"this is a text file that somebody named scan.png\n", {}, 415, "unsupported_media_type"),
    (drawing.png_bytes(drawing.draw_page(["some text"]))[:3000], {}, 400, "corrupt_image"),
    (drawing.jpeg_bytes(drawing.draw_page(drawing.letter_lines()))[:20000], {}, 400, "corrupt_image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, {}, 400, "corrupt_image"),
    (drawing.bomb_png(20000, 20000), {}, 400, "image_too_large"),
    # Between Pillow's warning and error limits: must not leak a DecompressionBombWarning.
    (drawing.bomb_png(10000, 10000), {"max_pixels": 500_000_000}, 400, "image_too_large"),
    (_png((3000, 3000)), {"max_pixels": 1_000_000}, 400, "image_too_large"),
    (_png((1, 1)), {}, 400, "image_too_small"),
    (_png((15, 400)), {}, 400, "image_too_small"),
    (drawing.tiff_bytes([Image.new("L", (100, 100), 255)] * 3), {"max_pages": 2}, 413, "too_many_pages"),
    (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF", {}, 400, "corrupt_pdf"),
    (drawing.pdf_bytes([Image.new("L", (100, 100), 255)] * 3), {"max_pages": 2}, 413, "too_many_pages"),
], ids=["empty", "text", "truncated-png", "truncated-jpeg", "garbage-png", "bomb", "bomb-warning-range",
        "over-limit", "1x1", "thin", "tiff-pages", "broken-pdf", "pdf-pages"])
def test_inspect_upload_rejects(data, limits, status, code):
    with pytest.raises(BadInput) as caught:
        pages.inspect_upload(data, **{**LIMITS, **limits})
    assert (caught.value.status, caught.value.code) == (status, code)


def test_inspect_upload_accepts_every_image_format():
    page = drawing.draw_page(["hello"], size=(200, 100), margin=10)
    for fmt, media_type in [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("TIFF", "image/tiff"),
                            ("WEBP", "image/webp"), ("BMP", "image/bmp")]:
        buf = io.BytesIO()
        page.save(buf, fmt)
        assert pages.inspect_upload(buf.getvalue(), **LIMITS) == pages.UploadInfo(media_type, 1)
        assert pages.load_page(buf.getvalue(), media_type, 0).size == (200, 100)


def test_timeout_is_transient(receipt):
    with pytest.raises(TransientError) as caught:
        ocr.Tesseract(timeout=0.001).read(receipt)
    assert caught.value.stage == "ocr"
    assert "timed out after 0.001s" in caught.value.message


def test_unknown_language_is_permanent(tesseract, receipt):
    with pytest.raises(PermanentError, match="not installed: zzz"):
        tesseract.read(receipt, lang="eng+zzz")


def test_languages_and_version(tesseract):
    assert "eng" in tesseract.languages()
    assert "osd" not in tesseract.languages()
    assert tesseract.version().split(".")[0] >= "4"


def test_load_page_by_index(receipt):
    letter = drawing.draw_page(drawing.letter_lines())
    for data, media_type in [(drawing.tiff_bytes([receipt, letter]), "image/tiff"),
                             (drawing.pdf_bytes([receipt, letter]), "application/pdf")]:
        images = all_pages(data, media_type)
        assert len(images) == 2 and images[0].tobytes() != images[1].tobytes()
        assert pages.load_page(data, media_type, 1).tobytes() == images[1].tobytes()
        with pytest.raises(PermanentError, match="no page 3"):
            pages.load_page(data, media_type, 2)


def test_pdf_rendering_from_many_threads(receipt):
    data = drawing.pdf_bytes([receipt, Image.new("L", (300, 300), 255)])
    expected = [p.tobytes() for p in all_pages(data, "application/pdf")]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: all_pages(data, "application/pdf"), range(12)))
    assert all([p.tobytes() for p in images] == expected for images in results)


def test_page_too_long_for_tesseract_is_scaled_to_fit(tesseract):
    assert ocr.prepare(Image.new("L", (40000, 30), 255)).width == ocr.MAX_TESSERACT_SIDE
    assert tesseract.read(Image.new("L", (40000, 30), 255)).text == ""


CRASHING_TESSERACT = """#!/bin/sh
case "$1" in
  --version) echo "tesseract 5.3.0"; exit 0;;
  --list-langs) printf 'List of available languages in "/x/" (2):\\neng\\nosd\\n'; exit 0;;
esac
echo "Segmentation fault" >&2
kill -KILL $$
"""


@pytest.fixture
def crashing_tesseract(tmp_path):
    script = tmp_path / "tesseract"
    script.write_text(CRASHING_TESSERACT)
    script.chmod(0o755)
    # pytesseract keeps the command in a module global: put the real one back afterwards.
    original = pytesseract.pytesseract.tesseract_cmd
    yield ocr.Tesseract(cmd=str(script))
    pytesseract.pytesseract.tesseract_cmd = original


def test_crashing_binary_is_transient(crashing_tesseract, receipt):
    with pytest.raises(TransientError, match="tesseract failed") as caught:
        crashing_tesseract.read(receipt)
    assert caught.value.stage == "ocr"


def test_run_tesseract_keeps_the_signature_we_call():
    # app/ocr.py calls pytesseract.pytesseract.run_tesseract (not exported by the package) so that one
    # run writes both the TSV and the PDF layer: an upgrade that changes it must fail here, loudly.
    import inspect

    params = list(inspect.signature(pytesseract.pytesseract.run_tesseract).parameters)
    assert params[:5] == ["input_filename", "output_filename_base", "extension", "lang", "config"]
    assert "timeout" in params


def test_one_run_leaves_no_files_behind(tmp_path, receipt):
    engine = ocr.Tesseract(timeout=30)
    layer = tmp_path / "layer.pdf"
    page = engine.read(receipt, layer=layer)
    assert "ACME Store" in page.text
    assert layer.read_bytes().startswith(b"%PDF-")
    workdir = engine._workdir
    assert workdir is not None and list(workdir.iterdir()) == []
    engine.close()
    assert not workdir.exists()


def test_a_missing_binary_is_permanent(tmp_path, receipt):
    original = pytesseract.pytesseract.tesseract_cmd
    try:
        with pytest.raises(PermanentError, match="not installed"):
            ocr.Tesseract(cmd=str(tmp_path / "no-such-tesseract")).read(receipt)
    finally:
        pytesseract.pytesseract.tesseract_cmd = original


def test_16_bit_samples_are_stretched_not_clipped():
    page = Image.new("I;16", (700, 700), 60000)
    page.paste(3000, (100, 100, 300, 200))  # ink at 3000 of 65535: still "white" if clipped to 8 bits
    gray = ocr.prepare(page)
    assert gray.mode == "L" and gray.size == (700, 700)
    assert gray.getpixel((200, 150)) == 0 and gray.getpixel((500, 500)) == 255


@pytest.mark.parametrize("low, high", [(150, 4000), (2500, 62000), (0, 65535)])
def test_an_8_bit_page_stored_in_16_bits_comes_back_exactly(low, high):
    """Rounded, not truncated: on a noisy fax a value off by one changes what tesseract reads."""
    import inputs

    page = drawing.draw_page(inputs.KNOWN_LINES, size=(700, 700))
    assert page.getextrema() == (0, 255)  # the whole range: stretching it back changes nothing
    gray = ocr.prepare(pages.load_page(inputs.png16(page, rgb=False, low=low, high=high), "image/png", 0))
    assert gray.tobytes() == page.tobytes()
