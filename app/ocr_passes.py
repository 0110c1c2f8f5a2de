"""A second OCR reading of weak pages with a preprocessing variant, kept only when it reads better.

Small print on a receipt scanned at low resolution, faint thermal paper or broken strokes read
with low confidence; reading the page again enlarged (tesseract prefers a cap height of 30 px or
more) and with its dark strokes thickened often recovers dates and amounts. The second reading
costs about one more tesseract run per weak page.

A page that still holds no date after that (a receipt whose date line tesseract dropped or misread,
weak or not) is read once more, the same image as one uniform block of text (`--psm 6`): that finds
lines the automatic layout analysis skipped. It is kept only when it finds a date. Pages of running
text (MAX_UNDATED_WORDS words or more, a contract's or a letter's) and short labels read surely often
carry no date at all and are not read again.
"""
from __future__ import annotations

import re

from PIL import Image, ImageFilter

WEAK_CONFIDENCE = 80.0  # mean word confidence under which a page is read again
MIN_WORDS = 25  # or fewer words than this (little text: maybe a faint or tiny scan) ...
SURE_CONFIDENCE = 90.0  # ... unless read this surely: then it is a short page (a label), not a faint one
TARGET_LINE_HEIGHT = 48  # px: enlarge pages whose median line is shorter (about 2x for receipts), up to MAX_SCALE
MAX_SCALE = 2.5
MAX_PIXELS = 30_000_000  # never enlarge past this (time and memory)
MAX_UNDATED_WORDS = 300  # undated pages with fewer words get the block reading (receipts: up to ~280 words)
BLOCK_PSM = 6  # tesseract page segmentation mode: a single uniform block of text
# A second reading that keeps fewer words than this share of the first has dropped text, however
# surely it reads the rest: thickening the strokes of a noisy fax merges its print into blobs
# (real forms: 142 -> 61 words, at higher confidence and 0.10 lower accuracy), while on the receipts
# it helps the variant keeps 0.88-1.5 of the words.
MIN_WORD_SHARE = 0.7
# The block reading is kept for its date only when it reads the page about as well (its quality at
# least this share of the kept reading's): on a form, one block merges columns, and a stray
# date-shaped string is no reason to take a much worse reading (seen at 0.72, helpful ones 0.96+).
BLOCK_MIN_QUALITY_SHARE = 0.85
_GOOD_WORD = re.compile(r"[A-Za-z0-9]{2}")


def weak(page) -> bool:
    return page.confidence < WEAK_CONFIDENCE or (page.word_count < MIN_WORDS and page.confidence < SURE_CONFIDENCE)


def quality(page) -> float:
    """What a reading is worth: the confidence of its believable words (noise read as many short
    low-confidence words must not outscore a cleaner reading)."""
    return sum(w["confidence"] for line in page.lines for w in line["words"]
               if w["confidence"] >= 50 and _GOOD_WORD.search(w["text"]))


_DATE = re.compile(r"(?<![\d.,])(\d{1,2})\s?([-/.])\s?(\d{1,2})\s?\2\s?(?:19|20)?\d{2}(?![\d.,])"
                   r"|(?<![\d.,])(?:19|20)\d{2}([-/.])(\d{1,2})\4(\d{1,2})(?![\d.,])"
                   r"|(?<!\d)\d{1,2}\s*(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?[\s,]*(?:19|20)\d{2}(?!\d)", re.I)


def _dated(page) -> bool:
    """The reading holds something shaped like a date (what small print most often loses to a misread digit)."""
    for line in page.lines:
        for m in _DATE.finditer(line["text"]):
            a, b = (int(m[1]), int(m[3])) if m[1] else (int(m[5]), int(m[6])) if m[5] else (1, 1)
            if 1 <= min(a, b) and (max(a, b) <= 12 or (min(a, b) <= 12 and max(a, b) <= 31)):
                return True
    return False


def better(second, first) -> bool:
    """A reading that lost much of the other's words is not better (MIN_WORD_SHARE); else one that
    finds a date where the other finds none is; else the one whose believable words weigh more."""
    if second.word_count < MIN_WORD_SHARE * first.word_count:
        return False
    return (_dated(second), quality(second)) > (_dated(first), quality(first))


def _line_height(page) -> float:
    heights = sorted(line["box"][3] - line["box"][1] for line in page.lines if line.get("box"))
    return heights[len(heights) // 2] if heights else 0.0


def variant(image: Image.Image, first) -> tuple[Image.Image, float]:
    """(the image to read again, its scale against the original): enlarged when its print is
    small, then its dark strokes thickened with a 3x3 minimum filter."""
    height = _line_height(first)
    scale = 1.0
    if 0 < height < TARGET_LINE_HEIGHT:
        scale = min(TARGET_LINE_HEIGHT / height, MAX_SCALE, (MAX_PIXELS / (image.width * image.height)) ** 0.5)
    if scale > 1.05:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    else:
        scale = 1.0
    return image.filter(ImageFilter.MinFilter(3)), scale


def rescaled(page, scale: float, size: tuple[int, int]):
    """The reading of an enlarged image with its boxes in the original image's pixels."""
    if scale == 1.0:
        return page

    def box(b):
        return [round(v / scale) for v in b]

    for line in page.lines:
        line["box"] = box(line["box"])
        for word in line["words"]:
            word["box"] = box(word["box"])
    page.width, page.height = size
    return page


def second_reading(recognise, image: Image.Image, first):
    """The reading kept after the passes: `first`, or a reading of the variant when the page is weak
    and the variant reads better (`better`); then, when that holds no date, the block reading if it
    finds one (`block_reading`).

    recognise(image, psm=None) -> PageText: one tesseract run (the caller's language and time limit),
    with psm a page segmentation mode instead of tesseract's automatic one.
    """
    kept = first
    if weak(first):
        again, scale = variant(image, first)
        second = rescaled(recognise(again), scale, image.size)
        second.rotation, second.deskew = first.rotation, first.deskew
        if better(second, first):
            kept = second
    return block_reading(recognise, image, kept)


def block_reading(recognise, image: Image.Image, kept):
    """`kept`, or the same image read as one block of text (`--psm 6`) when `kept` holds no date, is
    neither a page of running text nor one read surely (a clean page without a date has none to
    lose: reading it again would double the cost of every such page), and the block reading finds a date
    while reading the page about as well (BLOCK_MIN_QUALITY_SHARE)."""
    if _dated(kept) or kept.word_count >= MAX_UNDATED_WORDS or kept.confidence >= SURE_CONFIDENCE:
        return kept
    block = recognise(image, psm=BLOCK_PSM)
    block.rotation, block.deskew = kept.rotation, kept.deskew
    if _dated(block) and quality(block) >= BLOCK_MIN_QUALITY_SHARE * quality(kept):
        return block
    return kept
