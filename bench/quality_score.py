"""Scoring conventions of the quality benchmark: one small function per comparison.

- Dates: compared as ISO YYYY-MM-DD; the receipts' printed truth is read day-first.
- Amounts: compared as numbers to the cent, currency left aside.
- Company and address: found when the canonical key's value matches the truth with difflib ratio
  >= 0.8 on lowercased alphanumeric words (the key itself, not any value of the result).
- Invoice numbers: equal after dropping case and everything but letters and digits.
- FUNSD pairs: a question -> answer link is found when one kv item matches both, its key against the
  question and its value against the answer, each at difflib ratio >= 0.8 on alphanumeric words,
  autojunk off (it scores long paragraphs far too low); a value the extractor made an ISO date also
  matches the same date as printed ("12/10/98" or "August 3, 1998", a numeric one in either order of
  day and month); precision is the share of kv items that match some linked pair.
- "In OCR text" (the ceiling for the extractor): the printed value occurs in the page text (dates,
  ids: ignoring case and spaces; amounts: some number in the text has the value; company, address:
  a run of one to four lines matches at >= 0.8; FUNSD: question and answer both match a stretch of
  the text with rapidfuzz partial_ratio >= 80).
- OCR character accuracy: the receipts' transcripts list printed segments in no reading order, so
  each segment is aligned with its best-matching stretch of the OCR text (rapidfuzz partial_ratio,
  an Indel similarity, case kept, runs of whitespace made one space) and the similarities are
  averaged weighted by segment length.
"""
from __future__ import annotations

import difflib
import re
from datetime import date
from decimal import Decimal, InvalidOperation

from rapidfuzz import fuzz

FUZZY = 0.8
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_NUMBER = re.compile(r"\d(?:[\d.,' ]*\d)?")


def words(text) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", str(text or "").lower()))


def similar(a, b) -> bool:
    a, b = words(a), words(b)
    # autojunk off: on texts of 200+ characters it drops every common letter as junk, and a paragraph read
    # nearly right (0.97) scored 0.69
    return bool(a and b) and difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= FUZZY


def compact(text) -> str:
    return re.sub(r"\s+", "", str(text or "")).lower()


def day_first_iso(printed: str) -> str | None:
    """The receipts' printed truth ("25/12/2018", "12-01-19", "18 MAR 2018", "20180304") as ISO."""
    text = printed.strip().lower()
    try:
        if m := re.fullmatch(r"(\d{4})(\d{2})(\d{2})", text):
            return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        if m := re.fullmatch(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", text):
            return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        if m := re.fullmatch(r"(\d{1,2})[-/. ](\d{1,2})[-/. ](\d{2}|\d{4})", text):
            year = int(m[3]) + (2000 if len(m[3]) == 2 else 0)
            return date(year, int(m[2]), int(m[1])).isoformat()
        if m := re.fullmatch(r"(\d{1,2})\s*([a-z]{3})[a-z]*\s*(\d{4})", text):
            return date(int(m[3]), _MONTHS[m[2]], int(m[1])).isoformat()
    except (ValueError, KeyError):
        return None
    return None


def amount(value) -> Decimal | None:
    """A number from "9.00", "$8.20", "RM 1,234.5", 4.11; None when there is none."""
    if value is None:
        return None
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value)).quantize(Decimal("0.01"))
    m = re.search(r"-?\d[\d,]*(?:\.\d+)?", str(value).replace(" ", ""))
    if not m:
        return None
    try:
        return Decimal(m[0].replace(",", "")).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def same_id(a, b) -> bool:
    a, b = re.sub(r"[^a-z0-9]", "", str(a or "").lower()), re.sub(r"[^a-z0-9]", "", str(b or "").lower())
    return bool(a) and a == b


def amount_in_text(value, text: str) -> bool:
    """Some number in the text has the value, read with either decimal mark (1,234.56 or 1.234,56)."""
    want = amount(value)
    if want is None:
        return False
    for m in _NUMBER.finditer(text):
        for token in {m[0], *m[0].split()}:
            token = token.replace(" ", "").replace("'", "")
            european = re.sub(r"[.]", "", token).replace(",", ".")
            if want in (amount(token), amount(european)):
                return True
    return False


def lines_match(value, text: str, *, span: int = 4) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return any(similar(" ".join(lines[i:i + n]), value) for n in range(1, span + 1) for i in range(len(lines)))


def partial_in_text(value, text: str) -> bool:
    return fuzz.partial_ratio(words(value), words(text)) >= FUZZY * 100


def char_accuracy(ocr_text: str, truth_lines: list[str]) -> float:
    got = " ".join(ocr_text.split())
    segments = [" ".join(line.split()) for line in truth_lines if line.strip()]
    total = sum(len(s) for s in segments)
    if not total:
        return 0.0
    return sum(len(s) * fuzz.partial_ratio(s, got) / 100 for s in segments) / total


def same_value(got, truth) -> bool:
    """Text alike, or the same date however written ("12 /10 /98", "August 3, 1998" and 1998-08-03; a
    numeric truth in either order of day and month). Dates are read with the service's own date parser."""
    if similar(got, truth):
        return True
    got = str(got or "").strip()
    if not re.fullmatch(r"\d{4}-\d\d-\d\d", got):
        return False
    from app.extract.dates import find_dates
    text = re.sub(r"\s*([-/.])\s*", r"\1", str(truth))
    return any(len(h) == 1 and h[0].iso == got for h in (find_dates(text, day_first=True),
                                                          find_dates(text, day_first=False)))


def pair_found(kv: dict, question: str, answer: str) -> bool:
    return any(similar(str(k).replace("_", " "), question) and same_value(v, answer) for k, v in kv.items())


def kv_item_correct(key: str, value, pairs: list[tuple[str, str]]) -> bool:
    return any(similar(str(key).replace("_", " "), q) and same_value(value, a) for q, a in pairs)
