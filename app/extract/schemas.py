"""JSON schemas of the extraction replies, and one validator that checks and cleans them."""
from __future__ import annotations

import copy
import json

from .labels import CANONICAL

MAX_TAGS = 4
MAX_TAG_CHARS = 40
MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 1000
MAX_KEY_CHARS = 100

_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}

DOCUMENT = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "description": "short title of the document"},
        "description": {"type": "string", "description": "one sentence: the document type and its main facts"},
        "tags": {"type": "array", "items": _STRING, "minItems": 1, "maxItems": MAX_TAGS,
                 "description": "1 to 4 short lowercase tags, the document type first"},
        "kv": {"type": "object", "additionalProperties": _STRING,
               "properties": {key: {"type": "string", "description": meaning} for key, meaning in CANONICAL.items()},
               "description": "facts as snake_case key -> string value (dates as YYYY-MM-DD); the listed keys "
                              "when the document gives them, other snake_case keys for anything else"},
    },
    "required": ["title", "description", "tags", "kv"],
    "additionalProperties": False,
}

FORM = copy.deepcopy(DOCUMENT)
FORM["properties"]["fields"] = {**_STRINGS, "description": "labels of the blank fields still to fill, as printed"}
FORM["required"] = [*DOCUMENT["required"], "fields"]

FILL = {
    "type": "object",
    "properties": {
        "filled": {
            "type": "object",
            "description": "field label -> the value chosen for it and the library entry it came from",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "value": _STRING,
                    "source": {
                        "type": "object",
                        "properties": {"type": _STRING, "id": _STRING},
                        "required": ["type", "id"],
                        "additionalProperties": False,
                    },
                },
                "required": ["value", "source"],
                "additionalProperties": False,
            },
        },
        "missing": {**_STRINGS, "description": "field labels no library entry gives a value for"},
    },
    "required": ["filled", "missing"],
    "additionalProperties": False,
}

SCHEMAS = {"document": DOCUMENT, "form": FORM, "fill": FILL}
_FIELD_TYPES = {"string": ["string", "null"], "date": ["string", "null"], "amount": ["number", "string", "null"],
                "number": ["number", "string", "null"], "boolean": ["boolean", "string", "null"]}
_FIELD_HINTS = {"date": "YYYY-MM-DD", "amount": "the amount as a number, without currency",
                "number": "a number", "boolean": "true or false", "string": "the text as printed"}


def with_fields(kind: str, specs) -> dict:
    """The schema of a kind, plus `fields_requested` with one property per requested field."""
    schema = copy.deepcopy(SCHEMAS[kind])
    if not specs:
        return schema
    properties = {}
    for spec in specs:
        kind_of = spec.effective_type
        hint = f"{spec.description + '; ' if spec.description else ''}{_FIELD_HINTS[kind_of]}; null when absent"
        properties[spec.name] = {"type": _FIELD_TYPES[kind_of], "description": hint}
        if kind_of == "amount":
            properties[f"{spec.name}__currency"] = {"type": ["string", "null"],
                                                    "description": f"ISO 4217 currency of {spec.name}, or null"}
    schema["properties"]["fields_requested"] = {
        "type": "object", "properties": properties, "additionalProperties": False,
        "description": "the requested fields: the value the document gives for each, or null (never invented)"}
    schema["required"] = [*schema["required"], "fields_requested"]
    return schema


def requested_values(data: dict, names: list[str]) -> dict:
    """The raw answers for the requested fields (missing or malformed ones as None)."""
    raw = data.get("fields_requested") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        return dict.fromkeys(names)
    out = {}
    for name in names:
        value = raw.get(name)
        out[name] = value if isinstance(value, (str, int, float, bool)) else None
        currency = raw.get(f"{name}__currency")
        if isinstance(currency, str):
            out[f"{name}__currency"] = currency
    return out


def validate(kind: str, data) -> dict:
    """Check a reply of this kind and return a clean copy; ValueError says what is wrong."""
    if kind not in SCHEMAS:
        raise ValueError(f"unknown schema kind {kind!r}")
    _require_object(data, "the reply")
    if kind == "fill":
        return _fill(data)
    clean = {
        "title": _text(data, "title", limit=MAX_TITLE_CHARS, allow_empty=False),
        "description": _text(data, "description", limit=MAX_DESCRIPTION_CHARS),
        "tags": _tags(data),
        "kv": _kv(data),
    }
    if kind == "form":
        clean["fields"] = _string_list(data, "fields")
    return clean


def _require_object(value, what: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {_json_type(value)}")


def _require_key(data: dict, key: str, where: str = ""):
    if key not in data:
        raise ValueError(f"missing required key {key!r}" + (f" in {where}" if where else ""))
    return data[key]


def _json_type(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
            int: "number", float: "number"}.get(type(value), type(value).__name__)


def _scalar(value, where: str) -> str:
    """A string, with numbers and booleans written the way JSON writes them."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    raise ValueError(f"{where} must be a string, got {_json_type(value)}")


def _text(data: dict, key: str, *, limit: int, allow_empty: bool = True) -> str:
    value = _scalar(_require_key(data, key), key)
    if not value and not allow_empty:
        raise ValueError(f"{key} must not be empty")
    return value[:limit]


def _tags(data: dict) -> list[str]:
    raw = _require_key(data, "tags")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise ValueError(f"tags must be an array of strings, got {_json_type(raw)}")
    tags: list[str] = []
    for i, item in enumerate(raw):
        tag = " ".join(_scalar(item, f"tags[{i}]").lower().split())[:MAX_TAG_CHARS]
        if tag and tag not in tags:
            tags.append(tag)
    if not tags:
        raise ValueError("tags must hold at least one non-empty string")
    return tags[:MAX_TAGS]


def _kv(data: dict) -> dict[str, str]:
    raw = _require_key(data, "kv")
    _require_object(raw, "kv")
    kv: dict[str, str] = {}
    for key, value in raw.items():
        key = str(key).strip()[:MAX_KEY_CHARS]
        if not key or value is None:
            continue
        if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
            value = ", ".join(_scalar(v, f"kv[{key!r}]") for v in value if v is not None)
        kv[key] = _scalar(value, f"kv[{key!r}]")
    return kv


def _string_list(data: dict, key: str) -> list[str]:
    raw = _require_key(data, key)
    if not isinstance(raw, list):
        raise ValueError(f"{key} must be an array of strings, got {_json_type(raw)}")
    out: list[str] = []
    for i, item in enumerate(raw):
        text = _scalar(item, f"{key}[{i}]")
        if text and text not in out:
            out.append(text)
    return out


def _fill(data: dict) -> dict:
    raw = _require_key(data, "filled")
    _require_object(raw, "filled")
    filled: dict[str, dict] = {}
    for field, entry in raw.items():
        where = f"filled[{field!r}]"
        _require_object(entry, where)
        value = _scalar(_require_key(entry, "value", where), f"{where}.value")
        source = _require_key(entry, "source", where)
        _require_object(source, f"{where}.source")
        filled[str(field)] = {
            "value": value,
            "source": {
                "type": _scalar(_require_key(source, "type", f"{where}.source"), f"{where}.source.type"),
                "id": _scalar(_require_key(source, "id", f"{where}.source"), f"{where}.source.id"),
            },
        }
    missing = [m for m in _string_list(data, "missing") if m not in filled]
    return {"filled": filled, "missing": missing}
