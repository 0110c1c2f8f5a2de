"""The second OCR reading of weak pages: taken only for weak pages, kept only when better, boxes in page pixels;
the block reading of pages still without a date: kept only when it finds one."""
import pytest

from app import ocr, ocr_passes, pages
from bench import quality_corpus
from drawing import draw_page, receipt_lines


@pytest.fixture(scope="module")
def engine():
    return ocr.Tesseract(timeout=120)


def _counting(engine, lang="eng"):
    calls = []

    def recognise(image, psm=None):
        calls.append((image.size, psm))
        return engine._recognise(image, lang, 120, psm)
    return recognise, calls


def test_a_strong_page_is_read_once(engine):
    image = ocr.prepare(draw_page(receipt_lines()))
    recognise, calls = _counting(engine)
    first = recognise(image)
    assert not ocr_passes.weak(first)
    assert ocr_passes.second_reading(recognise, image, first) is first
    assert len(calls) == 1


def test_a_short_page_read_surely_is_read_once(engine):
    """A label of a dozen words is short, not faint: no second tesseract run for it."""
    image = ocr.prepare(draw_page(["PARCEL LABEL", "To: Grace Okafor", "12 Mill Lane, Porto"], size=(640, 400)))
    recognise, calls = _counting(engine)
    first = recognise(image)
    assert first.word_count < ocr_passes.MIN_WORDS
    if first.confidence < ocr_passes.SURE_CONFIDENCE:
        pytest.skip(f"tesseract read the label at confidence {first.confidence}")
    assert ocr_passes.second_reading(recognise, image, first) is first and len(calls) == 1


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
    assert len(calls) in (2, 3) and calls[1][1] is None
    blocked = calls[2:] == [(image.size, ocr_passes.BLOCK_PSM)]
    assert len(calls) == 2 or blocked  # a third run only as the block reading of the page's own image
    assert kept is first or ocr_passes.better(kept, first) or (blocked and ocr_passes._dated(kept))
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


def _reading(*lines):
    """A reading of the given lines, every word read with the given confidence."""
    out = [{"text": text, "box": [0, 30 * i, 300, 30 * i + 20], "confidence": conf,
            "words": [{"text": t, "box": [0, 30 * i, 300, 30 * i + 20], "confidence": conf} for t in text.split()]}
           for i, (text, conf) in enumerate(lines)]
    return ocr.PageText("\n".join(t for t, _ in lines), 70.0, width=300, height=30 * len(lines), lines=out)


@pytest.mark.parametrize("printed", ["Date: 05/02/2018 10:52", "05-02-18", "2018-02-05", "5 Feb 2018"])
def test_a_reading_that_finds_the_date_beats_one_that_lost_it(printed):
    lost = _reading(("SHOP SDN BHD", 90), ("Date: 6370572018", 90), ("TOTAL 12.50", 90))
    found = _reading(("SHOP SDN BHD", 80), (printed, 75), ("TOTAL 12.50", 80))
    assert ocr_passes.quality(found) < ocr_passes.quality(lost)
    assert ocr_passes.better(found, lost) and not ocr_passes.better(lost, found)


def test_without_dates_the_weightier_reading_wins():
    clear = _reading(("SHOP SDN BHD", 90), ("TOTAL 12.50", 90))
    noisy = _reading(("SH0P SDN", 60), ("TOTAL 12.50 1.20.5", 60))  # 1.20.5 is no date
    assert ocr_passes.better(clear, noisy) and not ocr_passes.better(noisy, clear)


def test_a_reading_that_dropped_most_words_is_not_better_however_sure():
    """Thickened strokes of a noisy fax: fewer words read more surely is lost text, not a better reading."""
    lines = [("Date: 05/02/2018 received by fax", 45), ("Brand manager review of the March plan", 40),
             ("Please return the signed copy to the office", 45), ("Total budget 12,500", 60)]
    first = _reading(*lines)
    blobs = _reading(("Date: 05/02/2018", 95), ("Total budget 12,500", 95))
    assert ocr_passes.quality(blobs) > ocr_passes.quality(first) and ocr_passes._dated(blobs)
    assert blobs.word_count < ocr_passes.MIN_WORD_SHARE * first.word_count
    assert not ocr_passes.better(blobs, first)
    kept_most = _reading(*lines[:3], ("Total budget 12,500", 95))  # the same words, one line surer
    assert ocr_passes.better(kept_most, first)


def _undated(lines):
    return [line for line in lines if not line.startswith("Date")]


def test_an_undated_page_read_surely_is_read_once(engine):
    """A clean page without a date has none to lose: no block reading (it would double its cost)."""
    image = ocr.prepare(draw_page(_undated(receipt_lines())))
    recognise, calls = _counting(engine)
    first = recognise(image)
    assert not ocr_passes._dated(first)
    if first.confidence < ocr_passes.SURE_CONFIDENCE:
        pytest.skip(f"tesseract read the clean page at confidence {first.confidence}")
    assert ocr_passes.second_reading(recognise, image, first) is first and len(calls) == 1


def test_an_undated_doubtful_reading_gets_one_block_reading_kept_only_with_a_date(engine):
    image = ocr.prepare(draw_page(_undated(receipt_lines())))
    recognise, calls = _counting(engine)
    first = recognise(image)
    first.confidence = ocr_passes.SURE_CONFIDENCE - 5  # read with some doubt (not weak)
    assert not ocr_passes.weak(first) and not ocr_passes._dated(first)
    kept = ocr_passes.second_reading(recognise, image, first)
    assert calls == [(image.size, None), (image.size, ocr_passes.BLOCK_PSM)]
    assert kept is first  # the block reading finds no date either


def test_the_block_reading_that_finds_the_date_is_kept(engine):
    undated = ocr.prepare(draw_page(_undated(receipt_lines())))
    dated = ocr.prepare(draw_page(receipt_lines()))
    recognise, calls = _counting(engine)
    lost = recognise(undated)  # a doubtful reading that lost the date line
    lost.rotation, lost.deskew, lost.confidence = 90, 0.5, ocr_passes.SURE_CONFIDENCE - 5
    kept = ocr_passes.block_reading(recognise, dated, lost)
    assert calls[-1] == (dated.size, ocr_passes.BLOCK_PSM)
    assert kept is not lost and ocr_passes._dated(kept)
    assert (kept.rotation, kept.deskew) == (90, 0.5) and (kept.width, kept.height) == dated.size


def test_a_block_reading_much_worse_than_the_kept_one_is_dropped_despite_a_date():
    kept = _reading(("Brand manager review of the March plan", 85), ("Please return the signed copy", 85),
                    ("to the office by Friday", 80))
    kept.confidence = ocr_passes.SURE_CONFIDENCE - 5
    garbled = _reading(("Brand mgr rev 1/2/98 Pl", 55), ("ret sgd cpy", 40))  # columns merged, a stray date
    fair = _reading(("Brand manager review of the March plan 1/2/98", 80), ("Please return the signed copy", 85),
                    ("to the office by Friday", 80))
    assert ocr_passes._dated(garbled) and ocr_passes._dated(fair) and not ocr_passes._dated(kept)
    assert ocr_passes.block_reading(lambda image, psm=None: garbled, None, kept) is kept
    assert ocr_passes.block_reading(lambda image, psm=None: fair, None, kept) is fair


def test_a_page_of_running_text_without_a_date_is_read_once(engine):
    words = "the parties agree that each of them shall keep the other party's information confidential".split()
    lines = [" ".join(words[(i + j) % len(words)] for j in range(9)) for i in range(40)]
    image = ocr.prepare(draw_page(lines, font_size=24, margin=60, line_gap=1.5))
    recognise, calls = _counting(engine)
    first = recognise(image)
    assert first.word_count >= ocr_passes.MAX_UNDATED_WORDS and not ocr_passes._dated(first)
    assert ocr_passes.second_reading(recognise, image, first) is first
    assert len(calls) == 1 + ocr_passes.weak(first)
