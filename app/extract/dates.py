"""Dates as printed on real documents, in several languages, to ISO; day or month first by evidence."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

# Month names and abbreviations in English, German, French, Dutch, Spanish, Italian and Malay
# (accents stripped, lowercase).
_MONTH_NAMES = {
    1: "january jan januar janner janvier janv januari enero ene gennaio gen",
    2: "february feb februar fevrier fevr fev februari febrero febbraio",
    3: "march mar marz maerz mrz mars maart mrt marzo mac",
    4: "april apr avril avr abril aprile",
    5: "may mai mei mayo maggio mag",
    6: "june jun juni juin junio giugno giu",
    7: "july jul juli juillet juil julio luglio lug julai",
    8: "august aug aout augustus agosto ago ogos ogo",
    9: "september sept sep septembre septiembre setiembre settembre set",
    10: "october oct oktober okt octobre octubre ottobre ott",
    11: "november nov novembre noviembre",
    12: "december dec dezember dez decembre diciembre dic dicembre disember dis",
}
MONTHS = {name: number for number, names in _MONTH_NAMES.items() for name in names.split()}
_MONTH = "(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(\d{1,2})\s*(?:st|nd|rd|th|er|e|\.|º)?"
_YEAR = r"(\d{4}|'\d{2})"

_PATTERNS = [
    # 2018-03-23, 2018/3/23
    ("ymd", re.compile(r"(?<![\d.])(\d{4})\s?([-/.])\s?(\d{1,2})\2(\d{1,2})(?!\d)")),
    # 25/12/2018, 12-01-19, 09- 06 2018, 21/05/2018Time:, 15.03.2024
    # (not inside codes such as "XE11-22 - 30"; a two-digit year only written tight: "12-01-19")
    # (and with a space OCR put inside the year: "21/05/20 18", "21/05/ 18")
    ("num", re.compile(r"(?<![\w.,/])(\d{1,2})\s?([-/.])\s?(\d{1,2})"
                       r"(?:\2\s?((?:19|20)\s\d{2}(?![\d:])|\d{2})(?![\d/])|(?:\s?\2\s?|\s)(\d{4}))(?![\d/])")),
    # 18 MAR 2018, 11th day of January, 2012, 3. Mai 2018, 20 de octubre de 2015, 18-Mar-18
    ("dmy", re.compile(rf"(?<!\d){_DAY}\s*(?:day\s+of\s+|of\s+|de\s+)?[-/ ]?\s*{_MONTH}\s*[-/ ,]?\s*(?:de\s+|of\s+)?"
                       rf"{_YEAR}(?!\d)|(?<!\d)(\d{{1,2}})-{_MONTH}-(\d{{2}})(?!\d)", re.I)),
    # August 3 , 2014, Mar. 15th, 2024, March 2024 excluded (no day)
    ("mdy", re.compile(rf"(?<![a-z]){_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s*(\d{{4}})(?!\d)", re.I)),
    # 27032018, 20180304: only standalone eight digits that make a plausible date
    ("compact", re.compile(r"(?<![\d.,/-])(\d{8})(?![\d.,/-])")),
]

MIN_YEAR, MAX_YEAR = 1900, 2100
_DIGIT_ZERO = re.compile(r"(?<=\d)o(?=\d|[-/.]\d)|(?<=\d[-/.])o|(?<![a-z])o(?=\d)")
_DIGIT_ONE = re.compile(r"(?<=\d)[|l](?=\d)|(?<![\w|])[|l](?=\d[-/.]\d)")
# Letters OCR reads for digits, in a token shaped like a numeric date ("LB/05/18", "I8-O5-2O18").
_LOOKALIKES = str.maketrans("oqdilj|!zsbg", "000111112589")
_D = r"[\dodqilj|!zsbg]"
_DATE_SHAPED = re.compile(rf"(?<![\w|!]){_D}{{1,2}}([-/.]){_D}{{1,2}}\1(?:{_D}{{4}}|{_D}{{2}})(?![\w|!])")


@dataclass(frozen=True)
class DateHit:
    start: int
    end: int
    iso: str
    ambiguous: bool  # day and month could be swapped (05/04/2024)
    kind: str


def fold(text: str) -> str:
    """Lowercase without accents: "Février" -> "fevrier"."""
    if text.isascii():  # most OCR text: nothing to strip
        return text.lower()
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def _iso(y: int, m: int, d: int) -> str | None:
    if not MIN_YEAR <= y <= MAX_YEAR:
        return None
    try:
        return date(y, m, d).isoformat()
    except ValueError:
        return None


def plausible(iso: str) -> str | None:
    """The date, or None when its year lies in the future beyond next year; a 7 in such a year is
    taken for a misread 1 when that gives a year that can be ("2078" -> "2018")."""
    latest = date.today().year + 1
    year = iso[:4]
    if int(year) <= latest:
        return iso
    for i in (3, 2):
        if year[i] == "7" and MIN_YEAR <= int(mended := year[:i] + "1" + year[i + 1:]) <= latest:
            return _iso(int(mended), int(iso[5:7]), int(iso[8:10]))
    return None


def _year(raw: str) -> int:
    raw = raw.lstrip("'").replace(" ", "")
    y = int(raw)
    return y + (2000 if y < 70 else 1900) if len(raw) == 2 else y


def find_dates(text: str, *, day_first: bool = True) -> list[DateHit]:
    """Every date in the text, in reading order; overlapping matches keep the first pattern's."""
    return list(_find_dates(text, day_first))


@lru_cache(maxsize=4096)  # the rules of one page ask about the same lines several times
def _find_dates(text: str, day_first: bool) -> tuple[DateHit, ...]:
    folded = fold(text)
    if len(folded) != len(text):  # a character that folds to several: positions would drift
        folded = text.lower()
    # OCR's usual confusions inside numbers, one character for one: "|7-06-2018", "2O18".
    folded = _DIGIT_ONE.sub("1", _DIGIT_ZERO.sub("0", folded))
    folded = _DATE_SHAPED.sub(_digits_of, folded)
    hits: list[DateHit] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(folded):
            hit = _convert(kind, m, day_first)
            if hit and not any(h.start < m.end() and m.start() < h.end for h in hits):
                hits.append(hit)
    return tuple(sorted(hits, key=lambda h: h.start))


def _digits_of(m: re.Match) -> str:
    """A date-shaped token with its lookalike letters read as digits, when most of it is digits."""
    token = m[0]
    return token.translate(_LOOKALIKES) if sum(c.isdigit() for c in token) >= 4 else token


def _convert(kind: str, m: re.Match, day_first: bool) -> DateHit | None:
    g = m.groups()
    ambiguous = False
    if kind == "ymd":
        iso = _iso(int(g[0]), int(g[2]), int(g[3]))
    elif kind == "num":
        a, b, y = int(g[0]), int(g[2]), _year(g[3] or g[4])
        ambiguous = a <= 12 and b <= 12 and a != b
        d, mo = (a, b) if (a > 12 or (b <= 12 and day_first)) else (b, a)
        iso = _iso(y, mo, d)
    elif kind == "dmy":
        if g[0] is not None:
            iso = _iso(_year(g[2]), MONTHS[g[1]], int(g[0]))
        else:
            iso = _iso(_year(g[5]), MONTHS[g[4]], int(g[3]))
    elif kind == "mdy":
        iso = _iso(int(g[2]), MONTHS[g[0]], int(g[1]))
    else:
        digits = g[0]
        iso = _iso(int(digits[:4]), int(digits[4:6]), int(digits[6:])) if digits[:2] in ("19", "20") else None
        iso = iso or _iso(int(digits[4:]), int(digits[2:4]), int(digits[:2]))
        if iso and not 1990 <= int(iso[:4]) <= 2049:
            iso = None
    if not iso:
        return None
    return DateHit(m.start(), m.end(), iso, ambiguous, kind)


# Cues for the order of day and month: US conventions read month first, nearly everyone else day first.
_MONTH_FIRST_CUES = re.compile(
    r"\b(?:[A-Z]{2}\s+\d{5}(?:-\d{4})?|U\.?S\.?A\.?|United States|Inc\.?|Corp\.?|L\.?L\.?C\.?)(?![\w-])"
    r"|\(\d{3}\)\s*\d{3}-\d{4}|\b\d{3}-\d{3}-\d{4}\b")
_DAY_FIRST_CUES = re.compile(
    r"(?i)\b(?:RM|MYR|GST|SST|sdn\.?\s*bhd|bhd|Malaysia|Singapore|Ltd|GmbH|B\.?V\.?|S\.?A\.?R\.?L|S\.?L\.?|S\.?r\.?l"
    r"|AG|Pty|VAT|TVA|BTW|MwSt|USt|IVA|EUR|GBP|INR|€|£|₹)(?![\w])")


def day_first_for(text: str, *, default: bool = True) -> bool:
    """Read 05/04/2024 day first unless the document says otherwise.

    First the document's own unambiguous dates (13/04 or 04/13 in the same notation), then
    country and language cues (a US address or phone number against RM, VAT, GmbH, ...).
    """
    votes = 0
    for m in _PATTERNS[1][1].finditer(text):
        if m[2] == "." and m[4]:
            continue  # "2.13.12" is more often a price and a quantity than a date
        a, b = int(m[1]), int(m[3])
        if not MIN_YEAR <= _year(m[4] or m[5]) <= MAX_YEAR:
            continue
        if a > 12 >= b:
            votes += 1
        elif b > 12 >= a:
            votes -= 1
    if votes:
        return votes > 0
    us = len(_MONTH_FIRST_CUES.findall(text))
    rest = len(_DAY_FIRST_CUES.findall(text))
    if us != rest:
        return rest > us
    return default
