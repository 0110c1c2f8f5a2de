"""The second OCR reading of weak pages: taken only for weak pages, kept only when better, boxes in page pixels."""
import pytest

from app import ocr, ocr_passes, pages
from bench import quality_corpus
from drawing import draw_page, receipt_lines


@pytest.fixture(scope="module")
def engine():
    return ocr.Tesseract(timeout=120)


def _counting(engine, lang="eng"):
    calls = []

    def recognise(image):
        calls.append(image.size)
        return engine._recognise(image, lang, 120)
    return recognise, calls


def test_a_strong_page_is_read_once(engine):
    image = ocr.prepare(draw_page(receipt_lines()))
    recognise, calls = _counting(engine)
    first = recognise(image)
    assert not ocr_passes.weak(first)
    assert ocr_passes.second_reading(recognise, image, first) is first
    assert len(calls) == 1


def test_a_weak_receipt_is_read_again_and_keeps_the_better_reading(engine):
    root = quality_corpus.corpus_dir()
    if quality_corpus.missing_reason(root):
        pytest.skip(quality_corpus.missing_reason(root))
    for doc in quality_corpus.load(root)["receipts"]:
        data = doc.path.read_bytes()
        image = ocr.prepare(pages.load_page(data, pages.detect_media_type(data), 0))
        recognise, calls = _counting(engine)
        first = recognise(image)
        if ocr_passes.weak(first):
            break
    else:
        pytest.skip("no weak receipt in the corpus")
    kept = ocr_passes.second_reading(recognise, image, first)
    assert len(calls) == 2
    assert ocr_passes.quality(kept) >= ocr_passes.quality(first)
    assert (kept.width, kept.height) == image.size
    for line in kept.lines:
        left, top, right, bottom = line["box"]
        assert 0 <= left < right <= image.width + 1 and 0 <= top < bottom <= image.height + 1


def test_small_print_is_enlarged_with_boxes_mapped_back(engine):
    big = draw_page(receipt_lines())
    small = big.resize((big.width // 3, big.height // 3))
    image = small.convert("L")
    recognise, calls = _counting(engine)
    first = recognise(image)
    again, scale = ocr_passes.variant(image, first)
    assert scale > 1.05 and again.size == (round(image.width * scale), round(image.height * scale))
    second = ocr_passes.rescaled(recognise(again), scale, image.size)
    assert (second.width, second.height) == image.size
    assert all(w["box"][2] <= image.width + 1 for line in second.lines for w in line["words"])
