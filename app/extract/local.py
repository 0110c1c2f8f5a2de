"""The built-in extractor: deterministic rules over OCR words and their boxes, no network."""
from __future__ import annotations

import difflib
import logging
import re

from . import amounts, classify, dates, facts, parties, schemas
from .base import Extraction, LibraryEntry
from .fields import FieldSpec, answer_locally
from .form_cells import form_key
from .forms import TableCell, form_pairs
from .labels import Pair, canonical_key, canonical_label, colonless_pairs, label_chain, label_key, pairs
from .layout import Page, confidence_in, read_pages

logger = logging.getLogger(__name__)

MATCH_THRESHOLD = 0.8
FORM_VALUE_CONFIDENCE = 50.0  # a form value OCR reads with less mean word confidence is noise (handwriting)
_TRAILING_BLANK = re.compile(r"^\s*(?P<label>[A-Za-z][\w &/().'-]{1,48}?)\s*(?:_{3,}|-{3,}|—+|\.{4,}|…+)[\s_.\-—–…]*$")
_CHECKBOX = re.compile(r"^\s*(?P<box>\[\s*\]|\[\s*[xX✓✔]\s*\]|\(\s*\)|☐|☑|☒)\s*(?P<label>\S.*)$")
_ISSUER_KEYS = ("company", "address")
_AMOUNT_KEYS = ("total", "subtotal", "tax")


class LocalExtractor:
    """Keyword, pattern and layout rules; the same pages always give the same answer."""

    name = "local"

    def __init__(self, *, day_first: bool | None = None):
        self.day_first = day_first  # None: decided per document from its own dates and cues

    def extract(self, kind: str, pages, *, fields: list[FieldSpec] | None = None,
                timeout: float | None = None) -> Extraction:
        """Title, description, tags, kv (canonical keys first) and provenance; blank fields for a form."""
        view = read_pages(pages)
        text = "\n".join(page.text for page in view)
        day_first = dates.day_first_for(text) if self.day_first is None else self.day_first
        found = _all_pairs(view, kind)
        kv, where, blanks = _free_keys(view, found, day_first, form_key if kind == "form" else label_key)
        canonical = _canonical(view, found, day_first)
        doc_type, tags = classify.classify(view, canonical, blanks=len(blanks), labels=len(found))
        if doc_type == "contract" or re.search(r"(?i)effective\s+(?:date|as\s+of|on)", text):
            effective = facts.effective_date(view, day_first)
            if effective:
                canonical["effective_date"] = effective
        _drop_guesses(canonical, kv, doc_type, kind)
        for key, fact in canonical.items():
            if kind == "form" and key in kv and not _same_amount(kv[key], fact.value, key):
                continue  # a form's own label gives the value; a pattern's guess does not replace it
            kv[key] = fact.value
            where[key] = fact
        if "total" in canonical and "payment" not in tags:
            tags.append("payment")
        dated = [h.iso for page in view for line in page.lines for h in dates.find_dates(line.text, day_first=day_first)]
        if len(set(dated)) > 1 and kind != "form":
            kv.setdefault("dates", ", ".join(dict.fromkeys(dated)))
        issuer = kv.get("company")
        first_lines = [line.text for page in view[:1] for line in page.lines]
        title = classify.title(first_lines, doc_type, issuer, kv.get("date"))
        data = {"title": title, "description": classify.describe(doc_type, title, issuer, kv, kind, blanks),
                "tags": tags[:schemas.MAX_TAGS], "kv": kv}
        if kind == "form":
            data["fields"] = blanks
        data = schemas.validate(kind, data)
        data["provenance"] = {k: {"page": f.page, "box": list(f.box)} for k, f in where.items()
                              if k in data["kv"] and f.page is not None and f.box is not None}
        if fields:
            data["fields_requested"] = answer_locally(fields, view, data["kv"], where, found, day_first)
        return Extraction(data=data, extractor=self.name)

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


def _all_pairs(view: list[Page], kind: str) -> list[Pair]:
    """Every label -> value pair: with a colon, known labels without one, and on forms label/value columns."""
    if kind == "form":
        found = [p for page in view for p in form_pairs(page)]
    else:
        found = [p for page in view for p in pairs(page)]
        found += [p for page in view for p in colonless_pairs(page, facts.known_label)
                  if not any(q.label_box == p.label_box and q.page == p.page for q in found)]
        return found
    return [p for p in found if _believed(view[p.page - 1], p)]


def _believed(page: Page, pair: Pair) -> bool:
    """Handwriting read as noise: a text value OCR itself does not believe is left out. Figures
    ("8557.02", "12") are kept: OCR doubts handwritten digits it reads right."""
    confidence = confidence_in(page, pair.box)
    if confidence < 0 or confidence >= FORM_VALUE_CONFIDENCE:
        return True
    alnum = re.sub(r"[^A-Za-z0-9]", "", pair.value)
    if isinstance(pair, TableCell) and len(alnum) >= 3:
        return True  # a cell under a table's header, where a value is expected
    return bool(alnum) and sum(c.isdigit() for c in alnum) >= 0.6 * len(alnum)


def _same_amount(printed: str, canonical: str, key: str) -> bool:
    """A labelled total printed as "$32.50" is the canonical 32.50: results show amounts as plain numbers."""
    if key not in _AMOUNT_KEYS:
        return False
    found = amounts.amounts(printed)
    return len(found) == 1 and found[0].text() == canonical


def _drop_guesses(canonical: dict, kv: dict, doc_type: str, kind: str) -> None:
    """A form's facts are its labelled fields: no issuer guessed from its title lines, and no
    canonical copy of a value a label already gives."""
    drop = set()
    if doc_type == "form" or (kind == "form" and doc_type not in classify.FROM_TYPES):
        drop |= set(_ISSUER_KEYS)
    if kind == "form":
        drop |= {"currency"} if "total" not in canonical else set()
        drop |= {k for k, f in canonical.items() if k not in kv and f.value in kv.values()}
    for key in drop:
        canonical.pop(key, None)


def _free_keys(view: list[Page], found: list[Pair], day_first: bool, key_of=label_key):
    """kv from every label -> value pair (dates made ISO), their provenance, and the blank fields."""
    kv: dict[str, str] = {}
    where: dict[str, facts.Fact] = {}
    blanks: list[str] = []
    for pair in found:
        key = key_of(pair.label)
        if not pair.value or any(k == key and v == pair.value for k, v in kv.items()):
            continue
        if key in kv:  # a label repeated down a table: name_of_account, name_of_account_2, ...
            n = 2
            while f"{key}_{n}" in kv:
                n += 1
            key = f"{key}_{n}"
        hits = dates.find_dates(pair.value, day_first=day_first)
        whole_date = len(hits) == 1 and len(re.sub(r"[^A-Za-z0-9]", "", pair.value)) <= 20
        kv[key] = hits[0].iso if whole_date else pair.value
        where[key] = facts.Fact(kv[key], pair.page, pair.box)
    for page in view:
        for line in page.lines:
            box = _CHECKBOX.match(line.text)
            if box:
                label = " ".join(box["label"].strip(" .:;-_").split())
                if re.search(r"[xX✓✔☑☒]", box["box"]):
                    kv.setdefault(label_key(label), "yes")
                    where.setdefault(label_key(label), facts.Fact("yes", line.page, line.box))
                else:
                    blanks.append(label)
                continue
            chain = label_chain(line.text)
            for label, value in chain:
                if not value and not any(p.label == label and p.value for p in found):
                    blanks.append(label)
            if not chain and (blank := _TRAILING_BLANK.match(line.text)):
                blanks.append(" ".join(blank["label"].split()))
    return kv, where, list(dict.fromkeys(blanks))


def _canonical(view: list[Page], found: list[Pair], day_first: bool) -> dict[str, facts.Fact]:
    """The canonical keys this document gives, each with where it was found."""
    out: dict[str, facts.Fact] = {}
    date = facts.primary_date(view, found, day_first)
    if date:
        out["date"] = date
    due = next((p for p in found if canonical_key(p.label) == "due_date"), None)
    if due and (hits := dates.find_dates(due.value, day_first=day_first)):
        out["due_date"] = facts.Fact(hits[0].iso, due.page, due.box)
    total = facts.total(view)
    if total:
        out["total"] = total[0]
    for key, finder in (("subtotal", facts.subtotal), ("tax", facts.tax)):
        fact = finder(view)
        if fact and (not total or fact.value != total[0].value or key == "subtotal"):
            out[key] = fact
    code = facts.currency(view, total[1] if total else None)
    if code:
        out["currency"] = facts.Fact(code, *((total[0].page, total[0].box) if total else (None, None)))
    number = facts.invoice_number(view, found)
    if number:
        out["invoice_number"] = number
    tax_id = facts.labelled_id(found, "tax_id")
    if tax_id:
        out["tax_id"] = tax_id
    named = parties.issuer(view)
    if named:
        out["company"] = named[0]
    place = parties.address(view, named[1] if named else None)
    if place:
        out["address"] = place
    for key, fact in facts.contacts(view).items():
        out[key] = fact
    return out


def _best_match(field: str, index: dict) -> tuple | None:
    if field in index:
        return index[field]
    best, best_ratio = None, MATCH_THRESHOLD
    for key, hit in index.items():  # insertion order: the earlier entry wins a tie
        ratio = difflib.SequenceMatcher(None, field, key).ratio()
        if ratio > best_ratio or (best is None and ratio >= best_ratio):
            best, best_ratio = hit, ratio
    return best
