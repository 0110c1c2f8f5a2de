"""A batch as a table: one row per task (id, file, status, error, canonical keys, requested fields), as CSV or JSONL."""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator

from . import jsonio
from .extract.fields import FieldSpec, parse_fields
from .extract.labels import CANONICAL

FORMATS = {"csv": "text/csv; charset=utf-8; header=present", "jsonl": "application/x-ndjson; charset=utf-8"}
KV_COLUMNS = tuple(CANONICAL)  # stable: every canonical key is a column, empty when a task lacks it
BASE_COLUMNS = ("task_id", "file", "status", "error")
FIELD_PREFIX = "field:"  # requested fields get their own columns, so `total` asked for never collides with kv's
# A cell a spreadsheet would run as a formula (OWASP "CSV injection"); a plain number such as -9.32 is left alone.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def requested_specs(rows) -> list[FieldSpec]:
    """The fields the batch's tasks asked for, in the order asked (one batch shares its options)."""
    specs, seen = [], set()
    for row in rows:
        raw = jsonio.loads(row["input"]).get("options", {}).get("fields")
        if not raw:
            continue
        try:
            parsed = parse_fields(raw)  # checked at submission; parsing again gives the effective types
        except ValueError:  # stored under other limits than today's: its canonical keys still show
            continue
        for spec in parsed:
            if spec.name not in seen:
                seen.add(spec.name)
                specs.append(spec)
    return specs


def task_record(row, specs: list[FieldSpec]) -> dict:
    """One task as an export row: every canonical key and every requested field present, null when missing."""
    task_input = jsonio.loads(row["input"])
    result = jsonio.loads(row["result"]) if row["result"] is not None else {}
    errors = jsonio.loads(row["errors"]) if row["errors"] else []
    kv = result.get("kv") or {}
    answered = result.get("fields_requested") or {}
    fields = {}
    for spec in specs:
        got = answered.get(spec.name) or {}
        entry = {"value": got.get("value"), "type": got.get("type", spec.effective_type)}
        if entry["type"] == "amount":
            entry["currency"] = got.get("currency")
        fields[spec.name] = entry
    failed = row["status"] in ("failed", "cancelled") and errors
    return {
        "task_id": row["id"],
        "file": "; ".join(f.get("name", "") for f in task_input.get("files", [])),
        "status": row["status"],
        "error": errors[-1].get("message") if failed and isinstance(errors[-1], dict) else None,
        "kv": {key: kv.get(key) for key in KV_COLUMNS},
        "fields": fields,
    }


def csv_header(specs: list[FieldSpec]) -> list[str]:
    header = [*BASE_COLUMNS, *KV_COLUMNS]
    for spec in specs:
        header.append(FIELD_PREFIX + spec.name)
        if spec.effective_type == "amount":
            header.append(f"{FIELD_PREFIX}{spec.name}:currency")
    return header


def csv_cells(record: dict, specs: list[FieldSpec]) -> list[str]:
    cells = [record[c] for c in BASE_COLUMNS] + [record["kv"][k] for k in KV_COLUMNS]
    for spec in specs:
        entry = record["fields"][spec.name]
        cells.append(_field_text(entry))
        if spec.effective_type == "amount":
            cells.append(entry.get("currency"))
    return [safe_cell(_text(c)) for c in cells]


def _field_text(entry: dict):
    value = entry["value"]
    if entry["type"] == "amount" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.2f}"
    return value


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return jsonio.dumps(value)
    return str(value)


def safe_cell(text: str) -> str:
    """The cell as text a spreadsheet shows rather than runs: a leading = + - @ tab or CR gets a ' before it."""
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_lines(records: Iterable[dict], specs: list[FieldSpec]) -> Iterator[bytes]:
    """RFC 4180: a header row, CRLF line ends, fields quoted when they hold a comma, quote or line break; UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)

    def line(cells) -> bytes:
        writer.writerow(cells)
        out = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return out.encode("utf-8")

    yield line([safe_cell(c) for c in csv_header(specs)])
    for record in records:
        yield line(csv_cells(record, specs))


def jsonl_lines(records: Iterable[dict]) -> Iterator[bytes]:
    """One JSON object per line, LF-terminated, UTF-8."""
    for record in records:
        yield jsonio.dumps_bytes(record) + b"\n"


def export(rows, fmt: str) -> Iterator[bytes]:
    """The batch's rows in `fmt` (csv or jsonl), a line at a time."""
    specs = requested_specs(rows)
    records = (task_record(row, specs) for row in rows)
    return csv_lines(records, specs) if fmt == "csv" else jsonl_lines(records)
