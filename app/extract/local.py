"""The built-in extractor: deterministic rules over noisy OCR text, no network."""
from __future__ import annotations

import difflib
import logging
import re
from datetime import date
from decimal import Decimal, InvalidOperation

from app.extract import schemas
from app.extract.base import Extraction, LibraryEntry

logger = logging.getLogger(__name__)

MATCH_THRESHOLD = 0.8

# (type, keywords): one point per keyword present; the type's name in a heading counts more.
TYPES = [
    ("receipt", ["receipt", "thank you for shopping", "cashier", "change due", "paid by card", "card payment",
                 "subtotal", "items sold"]),
    ("invoice", ["invoice", "bill to", "invoice number", "invoice date", "due date", "amount due",
                 "payment terms", "vat"]),
    ("bank statement", ["bank statement", "statement period", "opening balance", "closing balance",
                        "account number", "iban", "sort code", "transactions"]),
    ("letter", ["dear", "sincerely", "yours faithfully", "yours truly", "kind regards", "best regards"]),
    ("form", ["form", "application", "please complete", "please fill", "signature", "applicant"]),
    ("contract", ["agreement", "contract", "hereinafter", "the parties", "hereby", "terms and conditions",
                  "in witness whereof"]),
    ("id card", ["identity card", "id card", "passport", "nationality", "date of expiry", "place of birth"]),
    ("payslip", ["payslip", "pay slip", "gross pay", "net pay", "deductions", "employee id"]),
    ("utility bill", ["electricity", "meter reading", "kwh", "utility", "gas usage", "water usage"]),
    ("prescription", ["prescription", "dosage", "pharmacy", "patient"]),
    ("certificate", ["certificate", "hereby certify", "awarded"]),
    ("resume", ["curriculum vitae", "resume", "work experience", "education", "skills"]),
]
_FROM_TYPES = {"receipt", "invoice", "letter", "bank statement", "payslip", "utility bill", "certificate"}
_KEYWORD_RES = {t: [re.compile(rf"(?<![a-z]){re.escape(k)}(?![a-z])") for k in kws] for t, kws in TYPES}

_MONTHS = {m: i for i, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
     ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"),
     ("nov", "november"), ("dec", "december")], start=1) for m in names}
_MONTH = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?" \
         r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DATE_RES = [
    ("ymd", re.compile(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b")),
    ("num", re.compile(r"\b(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})\b")),
    ("mdy", re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)),
    ("dmy", re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+(\d{{4}})\b", re.I)),
]

_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
_CODES = "USD|EUR|GBP|CHF|CAD|AUD|JPY|SEK|NOK|DKK|PLN|INR"
_NUM = r"\d{1,3}(?:[,.']\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
# A trailing currency must not be followed by a number: in "x3 $9.00" the "$" belongs to 9.00.
_MONEY = re.compile(rf"(?:(?P<pre>[$€£¥]|\b(?:{_CODES})\b)\s?(?P<n1>-?(?:{_NUM}))"
                    rf"|(?P<n2>-?(?:{_NUM}))\s?(?P<post>[$€£¥]|\b(?:{_CODES})\b)(?!\s?\d))")
_BARE_DECIMAL = re.compile(r"(?<![\d.,])(\d{1,3}(?:[,.]\d{3})*[.,]\d{2})(?![\d])")
_TOTAL_STRONG = re.compile(r"\b(grand\s*total|total\s*due|amount\s*due|balance\s*due|total\s*amount|"
                           r"amount\s*payable|total\s*payable|closing\s*balance)\b", re.I)
_TOTAL_WEAK = re.compile(r"(?<![a-z])(?<!sub)(?<!sub[- ])total\b", re.I)
_MONEY_LABEL = re.compile(r"^\s*(sub\s*-?\s*total|tax|vat|sales\s+tax|tip|discount|shipping|delivery|"
                          r"service\s+charge|deposit|change|paid)\b", re.I)

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w/-])(\+?\(?\d[\d ().-]{5,}\d)(?![\w/])")
_PHONE_LABEL = re.compile(r"\b(phone|tel|telephone|mobile|cell|fax|call)\b", re.I)

_LABEL_LINE = re.compile(r"^\s*(?P<label>[A-Za-z][\w#&/().' -]{0,48}?)\s*[:;]\s*(?P<value>.*)$")
_BLANK_VALUE = re.compile(r"[\s_.\-—–…|=~*'`,]*")
_TRAILING_BLANK = re.compile(r"^\s*(?P<label>[A-Za-z][\w &/().'-]{1,48}?)\s*"
                             r"(?:_{3,}|-{3,}|—+|\.{4,}|…+)[\s_.\-—–…]*$")
_CHECKBOX = re.compile(r"^\s*(?P<box>\[\s*\]|\[\s*[xX✓✔]\s*\]|\(\s*\)|☐|☑|☒)\s*(?P<label>\S.*)$")

_SYNONYMS = {
    "telephone": "phone", "tel": "phone", "phone number": "phone", "telephone number": "phone",
    "tel number": "phone", "mobile": "phone", "mobile number": "phone", "cell": "phone", "cell phone": "phone",
    "contact number": "phone", "cell number": "phone", "email address": "email", "mail": "email", "e mail": "email",
    "dob": "date of birth", "birth date": "date of birth", "birthdate": "date of birth",
    "birthday": "date of birth", "full name": "name", "name in full": "name", "applicant name": "name",
    "surname": "last name", "family name": "last name", "given name": "first name",
    "given names": "first name", "forename": "first name", "zip": "postal code", "zip code": "postal code",
    "postcode": "postal code", "post code": "postal code", "street address": "address",
    "home address": "address", "postal address": "address", "residential address": "address",
    "addr": "address", "organisation": "company", "organization": "company", "company name": "company",
}
_FILLER = {"your", "the", "please", "enter"}
_NUMBER_WORDS = {"no": "number", "nr": "number", "num": "number"}
_HEADING_QUALIFIERS = {"tax", "sales", "cash", "proforma", "commercial", "customer", "official"}
_DATE_NOISE = re.compile(r"[^A-Za-z0-9]")
_NOT_PRIMARY = re.compile(r"due|birth|expir|valid", re.I)


class LocalExtractor:
    """Keyword and pattern rules; the same text always gives the same answer."""

    name = "local"

    def __init__(self, *, day_first: bool = True):
        self.day_first = day_first  # how to read an ambiguous 05/04/2024

    def extract(self, kind: str, pages: list[str], *, timeout: float | None = None) -> Extraction:
        """Title, description, tags and kv from the page texts; blank fields too for a form."""
        lines = [" ".join(line.split()) for page in pages for line in page.splitlines()]
        lines = [line for line in lines if line]
        text = "\n".join(lines)
        kv, fields = self._pairs(lines)
        dates = _unique(iso for _, iso in self._dates(text))
        if dates:
            kv.setdefault("date", self._primary_date(kv, lines) or dates[0])
            if len(dates) > 1:
                kv.setdefault("dates", ", ".join(dates))
        total = _total(lines)
        if total:
            kv["total"] = total[0]  # normalised, and the strongest total line wins over a "Total:" label
            if total[1]:
                kv.setdefault("currency", total[1])
        _contacts(lines, kv)
        doc_type, tags = _classify(lines, text, blanks=len(fields))
        if total and "payment" not in tags:
            tags.append("payment")
        title, issuer = _title(lines, doc_type, kv.get("date"))
        data = {"title": title, "description": _describe(doc_type, title, issuer, kv, kind, fields),
                "tags": tags[:schemas.MAX_TAGS], "kv": kv}
        if kind == "form":
            data["fields"] = fields
        return Extraction(data=schemas.validate(kind, data), extractor=self.name)

    def fill(self, fields: list[str], form_text: str, library: list[LibraryEntry], *,
             timeout: float | None = None) -> Extraction:
        """Match each field label to a library key; earlier entries win, the rest is missing."""
        index: dict[str, tuple[str, LibraryEntry]] = {}
        for entry in library:
            for key, value in entry.kv.items():
                value = str(value).strip() if value is not None else ""
                if value:
                    index.setdefault(canonical_label(key), (value, entry))
        filled, missing = {}, []
        for field in fields:
            match = _best_match(canonical_label(field), index)
            if match is None:
                missing.append(field)
                continue
            value, entry = match
            filled[field] = {"value": value, "source": {"type": entry.source_type, "id": entry.source_id}}
        data = {"filled": filled, "missing": missing}
        return Extraction(data=schemas.validate("fill", data), extractor=self.name)

    def _dates(self, text: str) -> list[tuple[int, str]]:
        """(position, ISO date) for every date in the text, in reading order."""
        found: list[tuple[int, int, str]] = []
        for kind, pattern in _DATE_RES:
            for m in pattern.finditer(text):
                iso = self._to_iso(kind, m.groups())
                if iso and not any(s < m.end() and m.start() < e for s, e, _ in found):
                    found.append((m.start(), m.end(), iso))
        return [(s, iso) for s, _, iso in sorted(found)]

    def _to_iso(self, kind: str, g: tuple) -> str | None:
        if kind == "ymd":
            y, m, d = int(g[0]), int(g[1]), int(g[2])
        elif kind == "num":
            a, b, y = int(g[0]), int(g[2]), int(g[3])
            y = y + (2000 if y < 70 else 1900) if len(g[3]) == 2 else y
            d, m = (a, b) if a > 12 or (b <= 12 and self.day_first) else (b, a)
        elif kind == "mdy":
            m, d, y = _MONTHS[g[0].lower()], int(g[1]), int(g[2])
        else:
            d, m, y = int(g[0]), _MONTHS[g[1].lower()], int(g[2])
        if not 1900 <= y <= 2100:
            return None
        try:
            return date(y, m, d).isoformat()
        except ValueError:
            return None

    def _date_value(self, value: str) -> str | None:
        """The ISO date when the whole value is one date."""
        found = self._dates(value)
        if len(found) == 1 and len(_DATE_NOISE.sub("", value)) <= 20:
            return found[0][1]
        return None

    def _pairs(self, lines: list[str]) -> tuple[dict[str, str], list[str]]:
        """`Label: value` lines into kv, blanks (`Label: ___`, `[ ] Label`) into fields."""
        kv: dict[str, str] = {}
        fields: list[str] = []
        for line in lines:
            box = _CHECKBOX.match(line)
            if box:
                label = _clean_label(box["label"])
                if re.search(r"[xX✓✔☑☒]", box["box"]):
                    kv.setdefault(label_key(label), "yes")
                else:
                    fields.append(label)
                continue
            pairs = _split_pairs(line)
            if not pairs:
                blank = _TRAILING_BLANK.match(line)
                if blank:
                    fields.append(_clean_label(blank["label"]))
                elif _MONEY_LABEL.match(line) and _MONEY.search(line):
                    # "Subtotal $30.50", "VAT 20% EUR 270.00": the last amount on the line.
                    last = list(_MONEY.finditer(line))[-1]
                    kv.setdefault(label_key(_MONEY_LABEL.match(line)[1]), _money(last))
                continue
            for label, value in pairs:
                if _BLANK_VALUE.fullmatch(value):
                    fields.append(label)
                else:
                    kv.setdefault(label_key(label), self._date_value(value) or value)
        return kv, _unique(fields)

    def _primary_date(self, kv: dict, lines: list[str]) -> str | None:
        """A labelled date that is not a due, birth or expiry date; else the first such date in the text."""
        for key, value in kv.items():
            if "date" in key and not _NOT_PRIMARY.search(key) and re.fullmatch(r"\d{4}-\d\d-\d\d", value):
                return value
        for line in lines:
            if not _NOT_PRIMARY.search(line):
                found = self._dates(line)
                if found:
                    return found[0][1]
        return None


def _split_pairs(line: str) -> list[tuple[str, str]]:
    """`Name: ____ Date: ____` gives both labels; a URL or a long sentence gives nothing."""
    m = _LABEL_LINE.match(line)
    if not m or m["value"].startswith("//") or len(m["label"].split()) > 6:
        return []
    label, value = _clean_label(m["label"]), m["value"].strip()
    blank = re.match(r"[\s_.\-—–…]*", value)
    rest = value[blank.end():]
    following = _split_pairs(rest) if rest else []
    if following:
        return [(label, "")] + following
    return [(label, value)]


def _clean_label(label: str) -> str:
    return " ".join(label.strip(" .:;-_").split())


def label_key(label: str) -> str:
    """A readable snake_case key: "Invoice No." -> "invoice_number", "E-mail" -> "email"."""
    text = label.lower().replace("e-mail", "email").replace("#", " number ")
    words = re.sub(r"[^a-z0-9]+", " ", text).split()
    if words and words[-1] in ("no", "nr", "num"):
        words[-1] = "number"
    return "_".join(words)[:60] or "value"


def canonical_label(label: str) -> str:
    """A form label or library key reduced for matching: case, punctuation and synonyms gone."""
    text = str(label).lower().replace("e-mail", "email").replace("#", " number ")
    words = [_NUMBER_WORDS.get(w, w) for w in re.sub(r"[^a-z0-9]+", " ", text).split() if w not in _FILLER]
    phrase = " ".join(words)
    return _SYNONYMS.get(phrase, phrase)


def _best_match(field: str, index: dict) -> tuple | None:
    if field in index:
        return index[field]
    best, best_ratio = None, MATCH_THRESHOLD
    for key, hit in index.items():  # insertion order: the earlier entry wins a tie
        ratio = difflib.SequenceMatcher(None, field, key).ratio()
        if ratio > best_ratio or (best is None and ratio >= best_ratio):
            best, best_ratio = hit, ratio
    return best


def _unique(items) -> list:
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _parse_number(raw: str) -> Decimal | None:
    """ "1,200.00", "1.200,00", "1,200" and "32.5" alike: one or two digits after the last separator are cents."""
    raw = raw.replace("'", "")
    last = max(raw.rfind(","), raw.rfind("."))
    whole, cents = (raw[:last], raw[last + 1:]) if last >= 0 and len(raw) - last - 1 in (1, 2) else (raw, "0")
    try:
        return Decimal(f"{re.sub(r'[,.]', '', whole) or '0'}.{cents}").quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def _money(m: re.Match) -> str:
    """A money match written as "$32.50" or "EUR 1,620.00"."""
    currency = m["pre"] or m["post"] or ""
    value = _parse_number(m["n1"] or m["n2"])
    if value is None:
        return m[0]
    if currency in _SYMBOLS:
        return f"{'-' if value < 0 else ''}{currency}{abs(value):,.2f}"
    return f"{currency} {value:,.2f}".strip()


def _total(lines: list[str]) -> tuple[str, str | None] | None:
    """(formatted total, currency code) from the strongest total line; the largest if several."""
    for pattern in (_TOTAL_STRONG, _TOTAL_WEAK):
        candidates = []
        for i, line in enumerate(lines):
            m = pattern.search(line)
            if not m:
                continue
            after = line[m.end():]
            tail = after if (_MONEY.search(after) or _BARE_DECIMAL.search(after)) else (
                lines[i + 1] if i + 1 < len(lines) else "")
            money = list(_MONEY.finditer(tail))
            if money:
                hit = money[-1]
                currency = hit["pre"] or hit["post"]
                candidates.append((_parse_number(hit["n1"] or hit["n2"]), _money(hit),
                                   _SYMBOLS.get(currency, currency)))
            elif (bare := _BARE_DECIMAL.findall(tail)):
                value = _parse_number(bare[-1])
                candidates.append((value, f"{value:,.2f}", None))
        candidates = [c for c in candidates if c[0] is not None]
        if candidates:
            _, text, currency = max(candidates, key=lambda c: c[0])
            return text, currency
    return None


def _contacts(lines: list[str], kv: dict) -> None:
    emails = _unique(m.lower() for line in lines for m in _EMAIL.findall(line))
    if emails:
        kv["email"] = emails[0]  # a labelled "E-mail:" value may hold several, or noise
        if len(emails) > 1:
            kv.setdefault("emails", ", ".join(emails))
    for line in lines:
        # Only labelled or "+"-prefixed numbers: account and reference numbers look like phones too.
        labelled = _PHONE_LABEL.search(line)
        for m in _PHONE.finditer(line):
            number = m[1].strip()
            digits = re.sub(r"\D", "", number)
            if 7 <= len(digits) <= 15 and (labelled or number.startswith(("+", "("))):
                key = "fax" if labelled and labelled[1].lower() == "fax" else "phone"
                kv.setdefault(key, number)


def _classify(lines: list[str], text: str, *, blanks: int) -> tuple[str, list[str]]:
    """The document type (or "document") and the tags, type first."""
    lowered = text.lower()
    heading = " ".join(lines[:3]).lower()
    scores = {}
    for doc_type, patterns in _KEYWORD_RES.items():
        score = sum(1 for p in patterns if p.search(lowered))
        if re.search(rf"(?<![a-z]){re.escape(doc_type)}(?![a-z])", heading):
            score += 3
        scores[doc_type] = score
    scores["form"] += 2 * min(blanks, 3)
    ranked = sorted((t for t in scores if scores[t] >= 2), key=lambda t: -scores[t])
    if not ranked:
        return "document", ["document"]
    return ranked[0], ranked[:3]


def _meaningful(line: str) -> bool:
    letters = sum(c.isalpha() for c in line)
    visible = sum(not c.isspace() for c in line)
    return (3 <= len(line) <= 80 and letters >= 3 and letters >= visible / 2
            and not _EMAIL.search(line) and not _CHECKBOX.match(line) and not _split_pairs(line)
            and not _MONEY.search(line) and not _BARE_DECIMAL.search(line))


def _title(lines: list[str], doc_type: str, when: str | None) -> tuple[str, str | None]:
    """(title, issuer): the first meaningful line, or "<Type> from <issuer>" under a bare type heading."""
    display = _display(doc_type)
    candidates = [line for line in lines[:15] if _meaningful(line) and not line.lower().startswith("dear ")]
    first = candidates[0] if candidates else None
    if first and not _is_type_heading(first, doc_type):
        return first, first
    issuer = next((c for c in candidates if c != first), None)
    if issuer:
        return f"{display} from {issuer}", issuer
    return (f"{display} {when}" if when else display), None


def _is_type_heading(line: str, doc_type: str) -> bool:
    """ "INVOICE", "Sales Receipt": a heading that names only the type, no good as a title."""
    words, type_words = re.sub(r"[^a-z ]", "", line.lower()).split(), doc_type.split()
    if words == type_words:
        return True
    return words[1:] == type_words and words[0] in _HEADING_QUALIFIERS


def _display(doc_type: str) -> str:
    return "ID card" if doc_type == "id card" else doc_type.capitalize()


def _describe(doc_type: str, title: str, issuer: str | None, kv: dict, kind: str, fields: list[str]) -> str:
    """One sentence: the type and the main facts."""
    display = _display(doc_type)
    if doc_type in _FROM_TYPES and issuer:
        sentence = f"{display} from {issuer}"
    elif title.lower() != doc_type:
        sentence = f'{display} "{title}"'
    else:
        sentence = display
    if kv.get("date"):
        sentence += f" dated {kv['date']}"
    if kv.get("total"):
        sentence += f", total {kv['total']}"
    if kind == "form":
        sentence += f", {len(fields)} blank field{'s' if len(fields) != 1 else ''} to fill"
    return sentence + "."
