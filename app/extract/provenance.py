"""Where a value came from: a value given without a location (an LLM's answer) matched back to the page's words."""
from __future__ import annotations

import re

from rapidfuzz import fuzz

from . import amounts, dates
from .layout import Box, Page

FUZZY = 90  # rapidfuzz partial_ratio for a value found in a line despite OCR noise


def locate(value, pages: list[Page]) -> tuple[int, Box] | None:
    """(page, box) of the text a value was read from: the same date, the same amount, or the same words."""
    if value is None or isinstance(value, bool):
        return None
    text = " ".join(str(value).split())
    if not text:
        return None
    if re.fullmatch(r"\d{4}-\d\d-\d\d", text):
        return _find(pages, lambda line: [(h.start, h.end) for h in dates.find_dates(line) if h.iso == text])
    number = amounts.parse_number(text) if re.fullmatch(r"-?[\d.,' ]+", text) else None
    if number is not None:
        found = _find(pages, lambda line: [(m.start, m.end) for m in amounts.amounts(line) if abs(m.value) == abs(number)])
        if found:
            return found
    wanted = text.lower()
    found = _find(pages, lambda line: [(i, i + len(wanted))] if (i := line.lower().find(wanted)) >= 0 else [])
    if found or len(wanted) < 4:
        return found
    return _fuzzy(pages, wanted)


def _find(pages: list[Page], matches) -> tuple[int, Box] | None:
    for page in pages:
        for line in page.lines:
            for start, end in matches(line.text):
                box = line.box_of(start, end)
                if box:
                    return page.number, box
    return None


def _fuzzy(pages: list[Page], wanted: str) -> tuple[int, Box] | None:
    best, best_score = None, FUZZY
    for page in pages:
        for line in page.lines:
            if not line.box:
                continue
            hit = fuzz.partial_ratio_alignment(wanted, line.text.lower())
            if hit is not None and hit.score >= best_score:
                box = line.box_of(hit.dest_start, hit.dest_end)
                if box:
                    best, best_score = (page.number, box), hit.score
    return best


def provenance(kv: dict, pages: list[Page]) -> dict:
    """{key: {page, box}} for every kv value found on the pages."""
    out = {}
    for key, value in kv.items():
        where = locate(value, pages)
        if where:
            out[key] = {"page": where[0], "box": list(where[1])}
    return out
