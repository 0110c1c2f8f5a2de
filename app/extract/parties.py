"""Who wrote the document: the issuer's name (the most prominent printed line near the top) and its address."""
from __future__ import annotations

import re
import statistics

from .dates import find_dates, fold
from .facts import Fact
from .layout import Page, Span, union

TOP_LINES = 12  # the issuer is printed in the heading: only this many first lines are considered
MIN_CONFIDENCE = 40.0  # handwriting and stamps read with low confidence; printed names rarely do
_LEGAL = re.compile(
    r"(?<![a-z])(sdn\.?\s*bhd|bhd|s/b|berhad|ltd|limited|llc|l\.l\.c|inc|corp|corporation|gmbh|ag|kg|b\.?\s?v|"
    r"n\.?\s?v|s\.?\s?a|s\.?a\.?r\.?l|sarl|sas|s\.?l|s\.?r\.?l|s\.?p\.?a|plc|pty|pvt|llp|oy|ab)(?![a-z])\.?", re.I)
_TRADE = re.compile(
    r"(?<![a-z])(enterprise|enterprises|trading|company|co|restaurant|restoran|cafe|bakery|bakeries|hardware|"
    r"pharmacy|farmasi|store|stores|mart|supermarket|hypermarket|kedai|stationery|marketing|services|industries|"
    r"holdings|group|bistro|kitchen\w*|station|hotel|book\w*|electrical|motor|auto|pizza|house|shop)(?![a-z])", re.I)
_REGISTRATION = re.compile(r"(?i)^\W*(?:co\.?\s*(?:no|reg)\w*\.?\s*:?\s*)?\(?\s*\d{3,}[-\s]?[A-Z]\s*\)?\W*$|"
                           r"company\s*(?:no|reg)|co\.?\s*reg|registration\s*no|\(\d{4,}-[a-z]\)")
_TYPE_HEADING = re.compile(
    r"^\W*(?:(?:tax|cash|sales|official|simplified|retail|proforma|pro-forma|commercial|customer|original|copy|"
    r"duplicate)\s+)*(?:receipt|invoice|invoices|bill|quotation|facture|rechnung|factuur|factura|fattura|invois|"
    r"resit|cash\s+sale|order|delivery\s+order|statement|guest\s+check|check)s?(?:\s*/\s*\w+)?\W*$", re.I)
_NOT_NAME = re.compile(r"(?i)\b(tel|fax|phone|gst|vat|sst|tin|reg\.?\s*no|e-?mail|www|http|welcome|thank|date|"
                       r"time|cashier|table|page|invoice\s*(?:no|#|number)|receipt\s*(?:no|#)|order\s*(?:no|#))\b|@")
_ADDRESS_CUE = re.compile(
    r"(?i)(?<![a-z])(jalan|jln|lorong|lrg|taman|tmn|persiaran|lebuh|bandar|kampung|kg|lot|no\.?|blok|block|"
    r"street|st\.?|road|rd\.?|avenue|ave\.?|lane|drive|boulevard|blvd|suite|floor|level|p\.?o\.?\s*box|"
    r"stra(?:ss|ß)e|str\.?|weg|platz|allee|rue|avenue|chemin|straat|laan|plein|calle|avenida|via|viale|piazza|"
    r"selangor|johor|kuala lumpur|penang|pulau pinang|perak|pahang|kedah|melaka|sabah|sarawak|negeri sembilan|"
    r"malaysia|singapore|germany|deutschland|france|nederland|espana|italia|united states|usa)(?![a-z])"
    r"|\b\d{5}\b|\b\d{4}\s?[A-Z]{2}\b|\b[A-Z]-?\d{4,5}\b|^\W*(?:no\.?\s*)?\d+[-/A-Z0-9&]*\s*,")
_ADDRESS_STOP = re.compile(r"(?i)\b(tel|fax|phone|gst|vat|sst|e-?mail|www|http|invoice|receipt|cashier|date|"
                           r"time|bill\s+to|ship\s+to|sold\s+to|customer|reg|company|co\.?\s*no|mobile|"
                           r"whatsapps?|order|carry|pay|table|counter|pos|terminal)\b|@|^\W*(t|f|h/?p)\s*[:.]")
_POSTCODE_LINE = re.compile(r"\b\d{5}\b\s*,?\s*[A-Za-z]")


def _letters(text: str) -> int:
    return sum(c.isalpha() for c in text)


def _printed(line: Span) -> bool:
    return line.confidence < 0 or line.confidence >= MIN_CONFIDENCE


_TRAILING_REGISTRATION = re.compile(
    r"\s*(?:[(\[{]\s*(?:co\.?\s*(?:no|reg)\w*\.?\s*:?\s*)?[A-Z]?\d{4,}[-\s]?[A-Z]?|\d[\d ]{4,}\s*-?\s*[A-Z])\s*[)\]}]?\s*$",
    re.I)


def name_text(text: str) -> str:
    """A name line without the registration number printed after it: "TRI SHAAS SDN BHD (728515-M)"."""
    return _TRAILING_REGISTRATION.sub("", " ".join(text.split())).strip(" .,*'\"‘’“”")


def _name_like(line: Span) -> bool:
    text = name_text(line.text)
    letters = _letters(text)
    visible = sum(not c.isspace() for c in text)
    return (letters >= 3 and letters >= 0.5 * visible and len(text) <= 80 and not _TYPE_HEADING.match(text)
            and not _NOT_NAME.search(text) and not find_dates(text) and not _REGISTRATION.search(text)
            and ":" not in text and not re.search(r"\d[.,]\s?\d\d\b", text))


def issuer(pages: list[Page]) -> tuple[Fact, int] | None:
    """(the issuer's name, its line index on the first page), from the heading of the first page.

    A printed line near the top that reads as a name scores by a legal form or trade word ("Sdn Bhd",
    "GmbH", "Trading"), a registration number or address right under it, its height against the
    page's lines, and how early it comes; handwriting (low confidence) and bare type headings
    ("TAX INVOICE") are never names.
    """
    if not pages or not pages[0].lines:
        return None
    page = pages[0]
    lines = page.lines
    heights = [ln.height for ln in lines if ln.height] or [1.0]
    median = statistics.median(heights)
    best, best_score = None, 0.0
    past_heading = False  # after the telephone or tax lines the heading has ended
    for i, line in enumerate(lines[:TOP_LINES]):
        if _NOT_NAME.search(line.text) and re.search(r"\d{4}", line.text):
            past_heading = True
        if not _printed(line) or not _name_like(line):
            continue
        score = 1.0 - 0.12 * i - (2.0 if past_heading else 0.0)
        if _LEGAL.search(fold(line.text)):
            score += 2.5
        elif _TRADE.search(fold(line.text)):
            score += 1.5
        elif _ADDRESS_CUE.search(line.text):
            score -= 1.5  # "KAWASAN PERINDUSTRIAN BALAKONG" is where, not who
        following = lines[i + 1:i + 3]
        if name_text(line.text) != " ".join(line.text.split()).strip(" .,*'\"‘’“”") or any(
                _REGISTRATION.search(f.text) for f in following):
            score += 1.5  # a registration number on the line or right under it
        elif following and _ADDRESS_CUE.search(following[0].text):
            score += 0.7
        if line.height and median:
            score += min(line.height / median, 2.5) - 1.0
        if line.text.isupper() and _letters(line.text) >= 4:
            score += 0.3
        if score > best_score:
            best, best_score = i, score
    if best is None:
        return None
    line = lines[best]
    return Fact(name_text(line.text), line.page, line.box), best


def address(pages: list[Page], after: int | None) -> Fact | None:
    """The block of lines under the issuer's name that reads as an address, up to its telephone or tax lines."""
    if not pages or not pages[0].lines:
        return None
    lines = pages[0].lines
    start = 0 if after is None else after + 1
    block: list[Span] = []
    for line in lines[start:start + 8]:
        text = line.text.strip()
        if block and (_ADDRESS_STOP.search(text) or find_dates(text) or _TYPE_HEADING.match(text)):
            break
        if not block:
            if _REGISTRATION.search(text) or not _printed(line):
                continue
            if not _ADDRESS_CUE.search(text):
                if after is None or _ADDRESS_STOP.search(text):
                    break
                continue  # a second name line ("BISTRO & CAFE") between the name and the street
        block.append(line)
        if len(block) >= 5:
            break
        if _POSTCODE_LINE.search(text) and re.search(r"(?i)malaysia|selangor|johor|lumpur|darul|[A-Z]{4,}\W*$",
                                                     text.split(",")[-1] if "," in text else text):
            following = lines[lines.index(line) + 1:lines.index(line) + 2]
            if not following or not re.search(r"(?i)malaysia|darul|ehsan|selangor|johor", following[0].text):
                break  # "40400 SHAH ALAM." ends the block unless the state or country follows
    if not block or not any(re.search(r"\d", ln.text) for ln in block):
        return None
    text = " ".join(" ".join(ln.text.split()) for ln in block)
    return Fact(text.strip(" ,"), block[0].page, union(ln.box for ln in block))
