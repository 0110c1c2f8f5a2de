"""Requested fields (`options.fields`): their specs, validated once, and the local extractor's answers."""
from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz

from . import amounts, dates
from .labels import CANONICAL, Pair, canonical_key, label_words
from .layout import Page, below, phrases, right_of

FIELDS_OPTION = ("fields you need (at most 50): names, or {name, type, description} objects with type one of "
                 "string, date, amount, number, boolean; answered in the result's fields_requested")
MAX_FIELDS = 50
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 300
TYPES = ("string", "date", "amount", "number", "boolean")
LABEL_MATCH = 80  # rapidfuzz ratio (0..100) for a requested name against a printed label
_TYPE_OF_KEY = {"date": "date", "due_date": "date", "effective_date": "date", "total": "amount",
                "subtotal": "amount", "tax": "amount"}
_TRUE = {"yes", "y", "true", "x", "checked", "ja", "oui", "si", "sí", "ya", "on", "1", "✓", "✔", "☑", "☒"}
_FALSE = {"no", "n", "false", "unchecked", "nein", "non", "nee", "tidak", "off", "0", "☐"}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str | None = None  # None: inferred from the name (a canonical key) or "string"
    description: str = ""

    @property
    def effective_type(self) -> str:
        return self.type or _TYPE_OF_KEY.get(canonical_key(self.name) or "", "string")


def parse_fields(raw) -> list[FieldSpec]:
    """Specs from `options.fields`: names, or {name, description?, type?}; ValueError names the bad item."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("options.fields must be a non-empty list of names or {name, type, description} objects")
    if len(raw) > MAX_FIELDS:
        raise ValueError(f"options.fields holds {len(raw)} items; at most {MAX_FIELDS}")
    specs, seen = [], set()
    for i, item in enumerate(raw):
        where = f"options.fields[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be a name or an object with a name")
        unknown = set(item) - {"name", "type", "description"}
        if unknown:
            raise ValueError(f"{where} has unknown key(s) {', '.join(sorted(map(str, unknown)))[:100]}")
        name, kind, description = item.get("name"), item.get("type"), item.get("description", "")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}.name must be a non-empty string")
        name = name.strip()
        if len(name) > MAX_NAME_CHARS or not name.isprintable() or not _encodable(name):
            raise ValueError(f"{where}.name must be printable text of at most {MAX_NAME_CHARS} characters")
        if kind is not None and kind not in TYPES:
            raise ValueError(f"{where}.type must be one of {', '.join(TYPES)}")
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS or not _encodable(description):
            raise ValueError(f"{where}.description must be text of at most {MAX_DESCRIPTION_CHARS} characters")
        if name in seen:
            raise ValueError(f"{where}.name {name!r} is requested twice")
        seen.add(name)
        specs.append(FieldSpec(name, kind, description.strip()))
    return specs


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON "\ud800"
        return False
    return True


def normalise(spec: FieldSpec, raw, *, currency: str | None = None) -> dict | None:
    """The answer for a raw value under the field's type, or None when the value is not of that type."""
    kind = spec.effective_type
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    text = str(raw).strip()
    if kind == "date":
        hits = dates.find_dates(text)
        return {"value": hits[0].iso} if hits else None
    if kind in ("amount", "number"):
        found = amounts.amounts(text.replace("−", "-"))
        if not found:
            return None
        money = next((m for m in found if m.decimals), found[0])
        if kind == "number":
            return {"value": int(money.value) if money.value == int(money.value) else float(money.value)}
        return {"value": float(money.value), "currency": money.currency or currency}
    if kind == "boolean":
        word = text.lower().strip(" .:[]()")
        if word in _TRUE:
            return {"value": True}
        if word in _FALSE:
            return {"value": False}
        return None
    return {"value": text}


def empty(spec: FieldSpec) -> dict:
    out = {"value": None, "type": spec.effective_type, "page": None, "box": None}
    if spec.effective_type == "amount":
        out["currency"] = None
    return out


def answer_locally(specs: list[FieldSpec], view: list[Page], kv: dict, where: dict, found: list[Pair],
                   day_first: bool) -> dict:
    """Each requested field from a canonical key, a printed label that matches its name, or the type's
    pattern beside a word of its name; null when the document does not hold it."""
    currency = kv.get("currency")
    out = {}
    for spec in specs:
        answer = None
        key = spec.name if spec.name in CANONICAL else canonical_key(spec.name)
        if key and key in kv:
            answer = _answer(spec, kv[key], where.get(key), currency, day_first)
        if answer is None:
            for pair in _matching_pairs(spec, found):
                answer = _answer(spec, pair.value, pair, currency, day_first)
                if answer:
                    break
        if answer is None:
            answer = _near_label(spec, view, currency, day_first)
        out[spec.name] = answer or empty(spec)
    return out


def _answer(spec, raw, source, currency, day_first) -> dict | None:
    if spec.effective_type == "date" and raw is not None:
        hits = dates.find_dates(str(raw), day_first=day_first)
        value = {"value": hits[0].iso} if hits else None
    else:
        value = normalise(spec, raw, currency=currency)
    if value is None:
        return None
    out = {"value": value["value"], "type": spec.effective_type}
    if spec.effective_type == "amount":
        out["currency"] = value.get("currency")
    box = getattr(source, "box", None)
    out["page"] = getattr(source, "page", None) if box else None
    out["box"] = list(box) if box else None
    return out


def _matching_pairs(spec: FieldSpec, found: list[Pair]) -> list[Pair]:
    wanted = label_words(spec.name)
    key = canonical_key(spec.name)
    scored = []
    for pair in found:
        if key and canonical_key(pair.label) == key:
            scored.append((101, pair))
            continue
        ratio = fuzz.ratio(wanted, label_words(pair.label))
        if ratio >= LABEL_MATCH:
            scored.append((ratio, pair))
    return [p for _, p in sorted(scored, key=lambda s: -s[0])]


def _near_label(spec: FieldSpec, view: list[Page], currency, day_first) -> dict | None:
    """A word of the name printed on the page, and a value of the field's type right of it or below it."""
    wanted = label_words(spec.name)
    if len(wanted) < 3:
        return None
    for page in view:
        units = [p for line in page.lines for p in phrases(line)]
        for unit in units:
            words = label_words(unit.text)
            if not words or fuzz.partial_ratio(wanted, words) < 90 or len(words) > 3 * len(wanted) + 20:
                continue
            pos = _after_label(unit.text, spec.name)
            candidates = [(unit.text[pos:], unit, pos)] if pos is not None and unit.text[pos:].strip() else []
            for other in (right_of(unit, units), below(unit, units)):
                if other is not None:
                    candidates.append((other.text, other, 0))
            for raw, span, offset in candidates:
                if spec.effective_type == "string":
                    continue  # a string has no pattern to recognise: only a label match names it
                answer = _answer(spec, raw, span, currency, day_first)
                if answer:
                    return answer
    return None


def _after_label(text: str, name: str) -> int | None:
    """Where the value starts after the printed label that matches the name (or None)."""
    m = re.search(r"[:;]\s*", text)
    if m:
        return m.end()
    words = text.split()
    target = label_words(name)
    for n in range(1, min(len(words), 5) + 1):
        if fuzz.ratio(label_words(" ".join(words[:n])), target) >= LABEL_MATCH:
            return len(" ".join(words[:n]))
    return None
