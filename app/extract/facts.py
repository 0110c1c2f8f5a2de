"""The canonical facts found by layout and wording: dates, the total, the currency, ids and contacts."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from . import amounts, dates
from .dates import fold
from .labels import Pair, canonical_key
from .layout import Box, Page, Span, all_right_of, below, phrases, rows

# Dates of another event than the document's own (a print date is the document's, but only the
# second choice: a reprint can be later).
_OTHER_EVENT = (r"due|birth|expir|valid|period|deliver|order|ship|lieferung|faellig|fallig|echeance|"
                r"verval|vencim|scadenz|bestell|commande|pedido|ordine|since|from\s+\w+\s+to|"
                r"arriv|depart|check[\s-]*(?:in|out)|anreise|abreise|llegada|salida|arrivo|partenza")
_NOT_PRIMARY = re.compile(_OTHER_EVENT + "|print")
_OTHER_EVENT_RE = re.compile(_OTHER_EVENT)


@dataclass
class Fact:
    value: str
    page: int | None = None
    box: Box | None = None


def _found(span: Span, start: int, end: int, value: str) -> Fact:
    return Fact(value, span.page, span.box_of(start, end))


def all_rows(pages: list[Page]) -> list[Span]:
    return [row for page in pages for row in rows(page)]


def primary_date(pages: list[Page], pairs: list[Pair], day_first: bool) -> Fact | None:
    """A date labelled as the document's own (not due, birth, delivery...); else the first plain date.

    A year OCR cannot have meant (2078 for 2018: 1 read as 7) is mended or passed over, and when the
    document prints the same date twice but one reading differs in a single digit ("19/03/2017" and
    "13/03/2017"), the reading OCR was surer of wins.
    """
    seen = _dates_read(pages, day_first)
    chosen = None
    for pair in pairs:
        if canonical_key(pair.label) == "date":
            hits = [h for h in (_plausible(h) for h in dates.find_dates(pair.value, day_first=day_first)) if h]
            if hits:
                chosen = Fact(hits[0].iso, pair.page, pair.box)
                break
    if chosen is None:
        first = next(((hit, row) for hit, row, _, before in seen if not _NOT_PRIMARY.search(before)), None)
        if first is None:
            return None
        chosen = _found(first[1], first[0].start, first[0].end, first[0].iso)
    return _surest_reading(chosen, seen)


def _plausible(hit: dates.DateHit) -> dates.DateHit | None:
    iso = dates.plausible(hit.iso)
    return dates.DateHit(hit.start, hit.end, iso, hit.ambiguous, hit.kind) if iso else None


def _dates_read(pages: list[Page], day_first: bool) -> list:
    """(hit, row, mean confidence of its words, the 40 characters before it) of every plausible date."""
    out = []
    for row in all_rows(pages):
        for hit in dates.find_dates(row.text, day_first=day_first):
            hit = _plausible(hit)
            if hit is None:
                continue
            scored = [w.confidence for w, s in zip(row.words, row.starts)
                      if s < hit.end and s + len(w.text) > hit.start and w.confidence >= 0]
            out.append((hit, row, sum(scored) / len(scored) if scored else -1.0, fold(row.text[:hit.start])[-40:]))
    return out


def _surest_reading(chosen: Fact, seen: list) -> Fact:
    """The chosen date, or a reading of it one digit apart that OCR read with clearly more confidence."""
    mine = max((conf for hit, _, conf, _ in seen if hit.iso == chosen.value), default=-1.0)
    if mine < 0:
        return chosen
    best = None
    for hit, row, conf, before in seen:
        if (conf > mine + 5 and not _OTHER_EVENT_RE.search(before)
                and sum(a != b for a, b in zip(hit.iso, chosen.value)) == 1 and (best is None or conf > best[2])):
            best = (hit, row, conf)
    return _found(best[1], best[0].start, best[0].end, best[0].iso) if best else chosen


_EFFECTIVE_DEFINED = re.compile(r"[(\[]\s*(?:the|this)?\s*[\"“”']?\s*(?:\w+\s+)?effective\s+date", re.I)
_EFFECTIVE_CUE = re.compile(r"(?:effective|dated|entered\s+into|made|executed)\s+(?:as\s+of|on|of|this)?", re.I)


def effective_date(pages: list[Page], day_first: bool) -> Fact | None:
    """When an agreement takes effect: the date defined as its "Effective Date", else the one its opening
    sentence gives ("made as of", "dated this 11th day of"), else the last date (its signatures)."""
    text = "\n".join(page.text for page in pages)
    flat = " ".join(text.split())
    hits = dates.find_dates(flat, day_first=day_first)
    if not hits:
        return None
    for hit in hits:  # "May 20, 2014 (the “Revised Effective Date”)"
        if _EFFECTIVE_DEFINED.match(flat, hit.end, hit.end + 60) or _EFFECTIVE_DEFINED.search(flat[hit.end:hit.end + 50]):
            return _locate(pages, hit.iso, flat[hit.start:hit.end])
    opening = flat[:2500]
    for cue in _EFFECTIVE_CUE.finditer(opening):
        nearby = [h for h in hits if cue.end() <= h.start <= cue.end() + 40]
        if nearby:
            return _locate(pages, nearby[0].iso, flat[nearby[0].start:nearby[0].end])
    # No date in the opening ("as of the date set forth below", or none at all): the agreement
    # takes effect when signed, and the signature block comes last.
    return _locate(pages, hits[-1].iso, flat[hits[-1].start:hits[-1].end])


def _locate(pages: list[Page], value: str, printed: str) -> Fact:
    """The fact with the box of the first line that holds (the start of) its printed form."""
    head = printed.split()[0] if printed.split() else printed
    for page in pages:
        for line in page.lines:
            pos = line.text.find(printed)
            if pos < 0 and head and len(head) >= 3:
                pos = line.text.find(head)
            if pos >= 0:
                return Fact(value, line.page, line.box_of(pos, pos + len(printed)))
    return Fact(value)


def total(pages: list[Page]) -> tuple[Fact, str | None] | None:
    """(total, currency code): the amount of the document's final total line.

    A total is a phrase naming it ("TOTAL", "Nett Total", "Gesamtbetrag", "Total TTC") but not a part
    of it or a payment ("Subtotal", "Total Qty 2", "GST", "Cash", "Change"); its amount is the first
    one after the label, else in the phrase right of it, else under it. Explicitly final wording
    (rounded, nett, grand, due, incl. tax) beats a plain total, a total after a rounding line beats
    both, and among equals the last one printed wins.
    """
    candidates = []  # (rank, order, Money, span, offset)
    order = 0
    for page in pages:
        row_list = rows(page)
        units = [p for row in row_list for p in phrases(row)]
        rounding_seen = False
        for unit in units:
            order += 1
            folded = fold(unit.text)
            if re.search(r"(?<![a-z])(rounding|round\s*adj\w*|pembundaran|rundung\w*|arrondi\w*|afronding)(?![a-z])",
                         folded):
                rounding_seen = True
                continue
            label = amounts.TOTAL_LINE.search(folded)
            if not label:
                continue
            end = _label_end(unit.text, label.end())
            digits = [i for i, c in enumerate(unit.text[:label.start()]) if c.isdigit()]
            words = unit.text[digits[-1] + 1 if digits else 0:end]  # "CASH 72.00 TOTAL INCL. GST": from TOTAL
            if not amounts.is_total_label(words):
                continue
            found = _amount_after(unit, label.end(), units)
            if found is None:
                continue
            money, span, offset, count = found
            rank = 3 if rounding_seen else amounts.total_strength(words)
            if count >= 3:
                rank = 0  # a table's sum row ("Total 9.94 0.59 10.40" under a tax summary): its last column
            rounding_seen = False
            candidates.append((rank, order, money, span, offset))
    if not candidates:
        return _confirmed_subtotal(pages)
    _, _, money, span, offset = max(candidates, key=lambda c: (c[0], c[1]))
    return _found(span, offset + money.start, offset + money.end, money.text()), money.currency


def _confirmed_subtotal(pages: list[Page]) -> tuple[Fact, str | None] | None:
    """With no total line that reads, the subtotal (or the total before tax) is the total when the
    document prints the same amount again further down: paid in cash, or in its tax summary."""
    for page in pages:
        row_list = rows(page)
        for i, row in enumerate(row_list):
            m = _SUBTOTAL.match(fold(row.text))
            money = [x for x in amounts.amounts(row.text[m.end():]) if x.decimals] if m else []
            if not money:
                continue
            last = money[-1]
            if any(x.value == last.value for later in row_list[i + 1:] for x in amounts.amounts(later.text) if x.decimals):
                return _found(row, m.end() + last.start, m.end() + last.end, last.text()), last.currency
            return None
    return None


def _amount_after(unit: Span, start: int, units: list[Span]):
    """(Money, span, offset, amounts on it) of the amount after a total label: in its phrase, in a
    phrase right of it, or under it."""
    found = _money_in(unit.text[start:])
    if found:
        return found[-1 if len(found) >= 3 else 0], unit, start, len(found)
    for other in [*all_right_of(unit, units, overlap=0.25)[:3], below(unit, units, reach=1.6)]:
        if other is None or amounts.names_other_line(other.text):
            continue  # "CHANGE RM 0.10" under a total is a line of its own
        found = _money_in(other.text)
        if found:
            return found[0], other, 0, len(found)
    if not unit.box:  # text only: the next line
        idx = next((i for i, u in enumerate(units) if u is unit), None)
        if idx is not None and idx + 1 < len(units) and not amounts.TOTAL_LINE.search(fold(units[idx + 1].text)):
            found = _money_in(units[idx + 1].text)
            if found:
                return found[0], units[idx + 1], 0, len(found)
    return None


def _money_in(text: str) -> list:
    """The amounts with cents in a total's text; "6 00" at its end when OCR lost the point."""
    found = [m for m in amounts.amounts(text.replace("%", " ")) if m.decimals]
    if found:
        return found
    lost = re.search(r"(?<![\d.,])(\d{1,5}) (\d{2})\s*$", text)
    if lost:
        return [amounts.Money(amounts.parse_number(f"{lost[1]}.{lost[2]}"), None, lost.start(), lost.end(), True)]
    return []


def _label_end(text: str, after_word: int) -> int:
    """Where the label part of a total phrase ends: before its first digit."""
    m = re.search(r"\d", text[after_word:])
    return after_word + m.start() if m else len(text)


def currency(pages: list[Page], found: str | None) -> str | None:
    if found:
        return found
    counts = Counter(m.currency for page in pages for line in page.lines for m in amounts.amounts(line.text)
                     if m.currency)
    return counts.most_common(1)[0][0] if counts else None


_ID_TOKEN = re.compile(r"[#:]?\s*([A-Z0-9][A-Z0-9/_.\-]*\d[A-Z0-9/_.\-]*)", re.I)
_HASH_ID = re.compile(r"^\s*(?:#|no\.?|nr\.?|n[°º])\s*:?\s*([A-Z0-9][\w/.\-]*\d[\w/.\-]*)\s*$", re.I)
_FALLBACK_KEYS = {"invoice_number": ("booking_number",)}


def invoice_number(pages: list[Page], pairs: list[Pair]) -> Fact | None:
    """The labelled invoice number; else a lone "# 123" / "No. 123" in the heading; else a booking reference."""
    fact = labelled_id(pairs, "invoice_number")
    if fact:
        return fact
    for page in pages[:1]:
        for line in page.lines[:12]:
            m = _HASH_ID.match(line.text)
            if m and not dates.find_dates(m[1]):
                return _found(line, m.start(1), m.end(1), m[1])
    return labelled_id(pairs, "booking_number")


def labelled_id(pairs: list[Pair], key: str) -> Fact | None:
    """The first value with digits under a label naming `key` ("Invoice No.", "Facture n°", "GST ID")."""
    for pair in pairs:
        if canonical_key(pair.label) != key:
            continue
        m = _ID_TOKEN.match(pair.value)
        if m and (key != "invoice_number" or not dates.find_dates(m[1])):
            value = m[1].rstrip(".-/")
            if key == "tax_id":  # "0000 6771 0976": groups of digits belong together
                tail = re.match(r"[\d\s-]+", pair.value[m.start(1):])
                if tail and len(tail[0].strip()) > len(value):
                    value = tail[0].strip()
            return Fact(value, pair.page, pair.box)
    return None


# A label that needs no colon: "Rechnungsnr. 30064443", "Facture n° 2022089083", "Invoice # 42", "GST ID 0016".
_KNOWN_LABEL = re.compile(
    r"^\s*((?:tax\s+)?invoice\s*(?:no\.?|nr\.?|number|num\.?|#|n[°º]|id)|invoice(?=\s+#?[a-z]{0,6}[-/_]?\d)|inv\.?\s*(?:no\.?|#)|bill\s*(?:no\.?|#)|"
    r"receipt\s*(?:no\.?|#)|booking\s*(?:id|no\.?|number|ref\w*)|rechnungs?\s*-?\s*(?:nr\.?|nummer)|rechnungsnummer|factuur\s*(?:nr\.?|nummer)|"
    r"factuurnummer|facture\s*n[°º]?o?\.?|n[°º]\s*(?:de\s+)?facture|numero\s+de\s+factura|factura\s*n[°º.]?|"
    r"fattura\s*n[°º.]?|numero\s+fattura|no\.?\s*invois|"
    r"gst\s*(?:reg\.?\s*)?(?:id|no\.?|number)|vat\s*(?:reg\.?\s*)?(?:id|no\.?|number)|ust-?id\.?-?nr\.?|"
    r"steuer-?nr\.?|steuernummer|btw-?nummer|n[°º]\s*tva|tva\s+intracom\w*|partita\s+iva|p\.\s?iva|gstin|sst\s*no\.?|"
    r"rechnungsdatum|factuurdatum|invoice\s+date|date|datum|fecha|tarikh|dated)(?![a-z])", re.I)


def known_label(text: str) -> tuple[str, int] | None:
    m = _KNOWN_LABEL.match(fold(text) if len(fold(text)) == len(text) else text)
    return (text[:m.end()].strip(), m.end()) if m else None


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w/-])(\+?\(?\d[\d ().-]{5,}\d)(?![\w/])")
_PHONE_LABEL = re.compile(r"(?<![a-z])(phone|tel|telephone|telefon|telefoon|telefono|tél|tlf|mobile|hp|cell|fax|"
                          r"call|t|f)(?![a-z])\s*[.:/]?", re.I)


def contacts(pages: list[Page]) -> dict[str, Fact]:
    """e-mail, phone and fax: the first of each (only labelled or "+"-prefixed numbers count as phones)."""
    out: dict[str, Fact] = {}
    for page in pages:
        for line in page.lines:
            for m in _EMAIL.finditer(line.text):
                out.setdefault("email", _found(line, m.start(), m.end(), m[0].lower()))
            labels = list(_PHONE_LABEL.finditer(line.text))
            for m in _PHONE.finditer(line.text):
                number = m[1].strip()
                digits = re.sub(r"\D", "", number)
                if not 7 <= len(digits) <= 15 or dates.find_dates(number):
                    continue
                label = next((lb for lb in reversed(labels) if lb.end() <= m.start() + 1), None)
                if label is None and not number.startswith(("+", "(")):
                    continue
                key = "fax" if label and label[1].lower() in ("fax", "f") else "phone"
                if label and "/" in line.text[label.start():m.start()] and "fax" in line.text.lower():
                    key = "phone"  # "TEL/FAX : 03-51213881" is both
                out.setdefault(key, _found(line, m.start(), m.start() + len(m[1]), number))
    return out


_SUBTOTAL = re.compile(r"^\W*(?:\d+\s+)?(sub\s*-?\s*t[ou0]t\w*|zwischensumme|sous[\s-]*total|subtotaal|total\s+ht|"
                       r"total\s*\(?\s*excl\w*\.?(?:\s+(?:of\s+)?(?:gst|vat|tax)\)?)?)(?![a-z])", re.I)
_TAX = re.compile(r"^\W*(tax|vat|gst|sst|sales\s+tax|mwst|ust|tva|btw|iva|total\s+(?:tax|vat|gst))\b(?!\s*(?:id|no|reg|#|number))",
                  re.I)


def labelled_amount(pages: list[Page], pattern: re.Pattern) -> Fact | None:
    """The last amount on the first row that starts with the label (subtotal, tax)."""
    for page in pages:
        for row in rows(page):
            m = pattern.match(fold(row.text))
            if not m:
                continue
            money = [x for x in amounts.amounts(row.text[m.end():]) if x.decimals]
            if money:
                last = money[-1]
                return _found(row, m.end() + last.start, m.end() + last.end, last.text())
    return None


def subtotal(pages: list[Page]) -> Fact | None:
    return labelled_amount(pages, _SUBTOTAL)


def tax(pages: list[Page]) -> Fact | None:
    return labelled_amount(pages, _TAX)
