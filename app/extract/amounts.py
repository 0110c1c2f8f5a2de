"""Amounts and currencies as printed ("RM 141.5", "85. 20", "1.234,56 €", "$8.20"), and the total line."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .dates import fold

SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "RM": "MYR", "Rs": "INR", "Rs.": "INR",
           "S$": "SGD", "US$": "USD", "A$": "AUD", "C$": "CAD", "CHF": "CHF", "Fr.": "CHF", "zł": "PLN", "kr": "SEK"}
CODES = ("USD", "EUR", "GBP", "CHF", "CAD", "AUD", "JPY", "SEK", "NOK", "DKK", "PLN", "INR", "MYR", "SGD", "CNY",
         "HKD", "NZD", "IDR", "THB", "PHP", "ZAR", "BRL", "MXN", "CZK", "HUF", "RON", "TRY")
_CUR = r"(?:US\$|S\$|A\$|C\$|[$€£¥₹]|\bRM|\bRs\.?|\b(?:" + "|".join(CODES) + r")\b)"
# 1,234.56 · 1.234,56 · 1 234,56 · 141.5 · 85. 20 (a space OCR put after the point) · 14
_NUM = r"\d{1,3}(?:[,.' ]\d{3})+(?:[.,]\s?\d{1,2})?(?!\d)|\d+(?:\s?[.,]\s?\d{1,2})?(?!\d)"
MONEY = re.compile(rf"(?P<pre>{_CUR})?\s?(?P<sign>-)?(?P<num>{_NUM})(?:\s?(?P<post>{_CUR}))?(?![\w%])")
# An amount with letters OCR reads for digits ("1O.5O", "2S.00", "l2.90"): O for 0, S for 5, l/I/| for 1.
_LOOKALIKE_AMOUNT = re.compile(r"(?<![A-Za-z\d])[\dOoSlI|]{1,7}[.,]\s?[\dOoSlI|]{2}(?![A-Za-z\d])")
_LOOKALIKES = str.maketrans("OoSlI|", "005111")
_LOST_POINT = re.compile(rf"(?P<pre>{_CUR})(?P<sp>\s?)(?P<whole>\d{{1,5}}) (?P<cents>\d{{2}})(?![\d.,])")


@dataclass
class Money:
    value: Decimal
    currency: str | None  # ISO code
    start: int
    end: int
    decimals: bool  # written with cents (or a currency mark): more likely an amount than a count

    def text(self) -> str:
        """Written the way results show amounts: "14.10", "1234.56" (a plain number, the currency apart)."""
        return f"{self.value:.2f}"


def parse_number(raw: str) -> Decimal | None:
    """ "1,200.00", "1.200,00", "1 200,00", "32.5", "85. 20": one or two digits after the last separator are cents."""
    raw = re.sub(r"\s(?=[.,])|(?<=[.,])\s", "", raw.strip()).replace("'", "").replace(" ", "")
    last = max(raw.rfind(","), raw.rfind("."))
    if last >= 0 and len(raw) - last - 1 in (1, 2):
        whole, cents = raw[:last], raw[last + 1:]
    else:
        whole, cents = raw, "0"
    try:
        return Decimal(f"{re.sub(r'[,.]', '', whole) or '0'}.{cents}").quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def currency_code(mark: str | None) -> str | None:
    if not mark:
        return None
    mark = mark.strip()
    return SYMBOLS.get(mark) or SYMBOLS.get(mark.rstrip(".")) or (mark.upper() if mark.upper() in CODES else None)


def _digits_of(m: re.Match) -> str:
    """The amount's lookalike letters as digits, when most of it is digits already (one for one: positions stay)."""
    token = m[0]
    digits = sum(c.isdigit() for c in token)
    return token.translate(_LOOKALIKES) if digits >= 2 and digits > len(token) - digits - 2 else token


def amounts(text: str) -> list[Money]:
    """Every number in the text that can be an amount, with its currency when one is written beside it."""
    # "RM8 60": OCR lost the point; with a currency mark in front the two digits are still cents.
    text = _LOOKALIKE_AMOUNT.sub(_digits_of, text)
    text = _LOST_POINT.sub(lambda m: f"{m['pre']}{m['sp']}{m['whole']}.{m['cents']}", text)
    out = []
    for m in MONEY.finditer(text):
        value = parse_number(m["num"])
        if value is None:
            continue
        if m["sign"]:
            value = -value
        has_cents = bool(re.search(r"[.,]\s?\d{1,2}$", m["num"]))
        mark = m["pre"] or m["post"]
        out.append(Money(value, currency_code(mark), m.start(), m.end(), has_cents or bool(mark)))
    return out


# Total words in English, German, French, Dutch, Spanish, Italian and Malay (folded: no accents).
_TOTAL_WORDS = (r"grand\s*t[o0]ta[l1i!|]?|t[o0]ta[l1i!|]?|totaal|gesamt\w*|endbetrag|rechnungsbetrag|summe|zu\s+zahlen|"
                r"montant|net\s+a\s+payer|a\s+payer|ttc|te\s+betalen|totale|importe|importo|da\s+pagare|"
                r"jumlah|amount\s+(?:due|payable)|balance\s+due|payable|amount\s+paid")
TOTAL_LINE = re.compile(rf"(?<![a-z])({_TOTAL_WORDS})(?![a-z])")
# Lines with a total word that are not the document's total: partial sums, taxes, counts, payment.
_NOT_TOTAL = re.compile(
    r"(?<![a-z])(sub\s*-?\s*t[ou0]t\w*|zwischensumme|sous[\s-]*total|subtota\w*|"
    r"qty|quantity|items?|pcs|count|menge|anzahl|quantite|aantal|cantidad|quantita|kuantiti|bilangan|"
    r"tax|gst|vat|sst|mwst|ust|tva|btw|iva|cukai|"
    r"excl\w*|ex\.?|ht|netto|before|without|ohne|sans|zonder|sin|senza|"
    r"discount|savings?|saved|rabatt|remise|korting|descuento|sconto|diskaun|"
    r"cash|tender\w*|change|paid|payment|card|visa|master\w*|bar|rendu|wisselgeld|cambio|resto|baki|tunai|"
    r"prelev\w*|debit\w*|lastschrift|abbuchung|domiciliation|incasso|"
    r"rounding|round\s*adj\w*|weight|points?|supplies|summary|analysis|saving|includes|included)(?![a-z])|%")
_INCLUSIVE = re.compile(r"(?<![a-z])(incl|incl\.|inclusive|inkl|inkl\.|inklusive|inc\.?|inc!|ttc|including|termasuk|rounded|nett?|net\s+total|"
                        r"grand|final|due|payable|a\s+payer|zu\s+zahlen|te\s+betalen|da\s+pagare)(?![a-z])")


def is_total_label(text: str) -> bool:
    """A line (or its label part) that names the document's total rather than a part of it."""
    folded = fold(text)
    if not TOTAL_LINE.search(folded):
        return False
    blocked = _NOT_TOTAL.search(folded)
    return not blocked or bool(_INCLUSIVE.search(folded) and not re.search(
        r"sub\s*-?\s*t[ou0]t|qty|quantity|items?|supplies|summary|saving|cash|change|tender", folded))


def total_strength(text: str) -> int:
    """2 for an explicitly final total (grand, due, incl. tax, rounded, nett), 1 for a plain one."""
    return 2 if _INCLUSIVE.search(fold(text)) else 1


_PAYMENT = re.compile(r"(?<![a-z])(cash|tender\w*|change|paid|payment|card|visa|master\w*|rendu|wisselgeld|cambio|"
                      r"resto|baki|tunai|kembalian|wechselgeld)(?![a-z])")


def names_other_line(text: str) -> bool:
    """A phrase that is a label of its own (another total, a payment): not the value of the label before it."""
    folded = fold(text)
    return bool(TOTAL_LINE.search(folded) or _PAYMENT.search(folded) or _NOT_TOTAL.match(folded.strip()))
