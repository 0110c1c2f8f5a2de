"""Batch exports (app/exports.py, GET /api/batches/<id>/export) on real corpus invoices and a receipt, over a socket."""
from __future__ import annotations

import csv
import io
import json

import pytest
import requests

from app import create_app
from app.auth import create_key
from app.exports import BASE_COLUMNS, KV_COLUMNS, csv_lines, safe_cell, task_record
from app.extract.fields import parse_fields
from app.server import Service
from bench import quality_score
from conftest import make_settings, wait_for

FIELDS = ["invoice_number", "order number", {"name": "due_date", "type": "date"}, {"name": "total", "type": "amount"}]
FIELD_COLUMNS = ["field:invoice_number", "field:order number", "field:due_date", "field:total", "field:total:currency"]
# Names as uploaded: the comma and quotes must survive CSV quoting; the leading = must not become a formula.
UPLOAD_NAMES = {"coolblue1": 'coolblue, "1".pdf', "NetpresseInvoice": "=netpresse.pdf"}


@pytest.fixture(scope="module")
def done(corpus, tmp_path_factory):
    """A live service, two tenants' keys, and one completed batch of acme's: two invoices
    (Dutch and French labels) and a receipt, asking for FIELDS. Tasks are in file order."""
    app = create_app(make_settings(tmp_path_factory.mktemp("exports"), rate_limit=0))
    db = app.extensions["docproc"].db
    keys = {t: {"Authorization": f"Bearer {create_key(db, t)}"} for t in ("acme", "other")}
    service = Service(app).start()
    invoices = {d.name: d for d in corpus["invoices"]}
    docs = [invoices["coolblue1"], invoices["NetpresseInvoice"], corpus["receipts"][0]]
    files = [("file", (UPLOAD_NAMES.get(d.name, d.path.name), d.path.read_bytes())) for d in docs]
    with requests.Session() as http:
        http.headers.update(keys["acme"])
        r = http.post(f"{service.url}/api/batches", files=files,
                      data={"type": "document", "options": json.dumps({"fields": FIELDS})}, timeout=60)
        assert r.status_code == 202, r.text
        batch = r.json()
        tasks = [wait_for(http, f"{service.url}/api/tasks/{t}", timeout=300) for t in batch["task_ids"]]
    assert [t["status"] for t in tasks] == ["completed"] * 3, [t["errors"] for t in tasks]
    yield {"url": service.url, "keys": keys, "batch": batch, "tasks": tasks, "docs": docs}
    service.stop(grace=5)


def _get(done, fmt=None, tenant="acme", batch_id=None):
    params = {"format": fmt} if fmt else None
    return requests.get(f"{done['url']}/api/batches/{batch_id or done['batch']['id']}/export", params=params,
                        headers=done["keys"][tenant], timeout=60)


def _csv(done, fmt="csv"):
    r = _get(done, fmt)
    assert r.status_code == 200, r.text
    return r, list(csv.reader(io.StringIO(r.content.decode("utf-8"), newline="")))


def _cell(value) -> str:
    """A value of the task's result as the CSV writes it."""
    return "" if value is None else str(value)


def test_csv_has_a_row_per_task_matching_the_results_read_through_the_api(done):
    r, table = _csv(done)
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8; header=present"
    assert r.headers["Content-Disposition"] == f'attachment; filename="batch-{done["batch"]["id"]}.csv"'
    header, *rows = table
    assert header == [*BASE_COLUMNS, *KV_COLUMNS, *FIELD_COLUMNS]
    assert len(rows) == len(done["tasks"])
    assert all(len(row) == len(header) for row in rows)
    for row, task, doc in zip(rows, done["tasks"], done["docs"]):
        cells = dict(zip(header, row))
        result = task["result"]
        assert (cells["task_id"], cells["status"], cells["error"]) == (task["id"], "completed", "")
        for key in KV_COLUMNS:
            assert cells[key] == safe_cell(_cell(result["kv"].get(key))), key
        asked = result["fields_requested"]
        for name in ("invoice_number", "order number", "due_date"):
            assert cells[f"field:{name}"] == _cell(asked[name]["value"]), name
        assert quality_score.amount(cells["field:total"]) == quality_score.amount(asked["total"]["value"])
        assert quality_score.amount(cells["field:total"]) == quality_score.amount(doc.fields["total"])
        assert cells["field:total:currency"] == _cell(asked["total"]["currency"])
    assert [dict(zip(header, row))["file"] for row in rows] == [
        'coolblue, "1".pdf', "'=netpresse.pdf", done["docs"][2].path.name]
    raw = r.content.decode("utf-8")
    assert '"coolblue, ""1"".pdf"' in raw and raw.endswith("\r\n") and raw.count("\r\n") == len(rows) + 1


def test_jsonl_carries_normalised_values_with_amount_and_currency(done):
    r = _get(done, "jsonl")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    assert r.headers["Content-Disposition"].endswith(f'batch-{done["batch"]["id"]}.jsonl"')
    records = [json.loads(line) for line in r.content.decode("utf-8").splitlines()]
    assert len(records) == len(done["tasks"])
    for record, task, doc in zip(records, done["tasks"], done["docs"]):
        result = task["result"]
        assert (record["task_id"], record["status"], record["error"]) == (task["id"], "completed", None)
        assert record["kv"] == {key: result["kv"].get(key) for key in KV_COLUMNS}
        assert list(record["fields"]) == ["invoice_number", "order number", "due_date", "total"]
        for name, entry in record["fields"].items():
            asked = result["fields_requested"][name]
            assert entry == {k: asked[k] for k in entry} and entry["type"] == asked["type"]
        total = record["fields"]["total"]
        assert isinstance(total["value"], float) and total["value"] == float(quality_score.amount(doc.fields["total"]))
    assert records[0]["file"] == 'coolblue, "1".pdf' and records[1]["file"] == "=netpresse.pdf"  # JSON needs no escaping
    invoices = [r for r, d in zip(records, done["docs"]) if d.set == "invoices"]
    assert [r["fields"]["total"]["currency"] for r in invoices] == [d.fields["currency"] for d in done["docs"][:2]]


def test_fields_answered_by_dutch_and_french_labels_equal_the_corpus_truth(done):
    """coolblue1 prints "Factuurnummer:" and "Ordernummer:", the Netpresse invoice "Facture n°"."""
    records = [json.loads(line) for line in _get(done, "jsonl").content.splitlines()]
    coolblue, netpresse = done["docs"][:2]
    truth = json.loads(coolblue.path.with_suffix(".json").read_text())[0]
    order_number = truth["narration"].split("Ordernummer:")[1].strip()  # "Ordernummer: 12572103"
    assert records[0]["fields"]["order number"]["value"] == order_number
    assert quality_score.same_id(records[0]["fields"]["invoice_number"]["value"], coolblue.fields["invoice_number"])
    assert quality_score.same_id(records[1]["fields"]["invoice_number"]["value"], netpresse.fields["invoice_number"])


def test_fields_the_documents_do_not_hold_are_null_not_invented(done):
    """Neither invoice nor the receipt prints a due date; the receipt has no order number."""
    header, *rows = _csv(done)[1]
    records = [json.loads(line) for line in _get(done, "jsonl").content.splitlines()]
    for record, row in zip(records, rows):
        assert record["fields"]["due_date"] == {"value": None, "type": "date"}
        assert dict(zip(header, row))["field:due_date"] == ""
    assert records[2]["fields"]["order number"]["value"] is None
    assert all(r["kv"]["effective_date"] is None for r in records)  # a canonical key no row has: still a column


def test_another_tenants_batch_and_unknown_ids_are_404_and_a_bad_format_400(done):
    assert _get(done, "csv", tenant="other").status_code == 404
    r = _get(done, "jsonl", batch_id="00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert _get(done, batch_id="not-a-batch").status_code == 404
    for bad in ("xlsx", "", "CSV"):
        r = _get(done, bad) if bad else requests.get(
            f"{done['url']}/api/batches/{done['batch']['id']}/export?format=", headers=done["keys"]["acme"], timeout=30)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_format", bad
        assert "csv, jsonl" in r.json()["error"]["message"]
    assert _get(done).headers["Content-Type"].startswith("text/csv")  # no format: CSV


def test_a_failed_task_keeps_every_column(tmp_path, start_service, http, corpus):
    """A task past its deadline fails: its row names the error, and its value cells are empty."""
    service = start_service(create_app(make_settings(tmp_path, task_timeout=0.001)))
    doc = corpus["receipts"][0]
    r = http.post(f"{service.url}/api/batches", files=[("file", ("r.jpg", doc.path.read_bytes()))],
                  data={"type": "document", "options": json.dumps({"fields": FIELDS})}, timeout=60)
    (task_id,) = r.json()["task_ids"]
    task = wait_for(http, f"{service.url}/api/tasks/{task_id}")
    assert task["status"] == "failed"
    r = http.get(f"{service.url}/api/batches/{r.json()['id']}/export", timeout=30)
    header, row = list(csv.reader(io.StringIO(r.text, newline="")))
    cells = dict(zip(header, row))
    assert header == [*BASE_COLUMNS, *KV_COLUMNS, *FIELD_COLUMNS]
    assert (cells["status"], cells["error"]) == ("failed", task["errors"][-1]["message"])
    assert all(cells[c] == "" for c in (*KV_COLUMNS, *FIELD_COLUMNS))


@pytest.mark.parametrize("text, cell", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+2", "'+1+2"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tcmd", "'\tcmd"), ("\r=1", "'\r=1"), ("-9.32", "-9.32"), ("-12", "-12"), ("ACME = 1", "ACME = 1"), ("", ""),
])
def test_cells_a_spreadsheet_would_run_get_a_quote(text, cell):
    assert safe_cell(text) == cell


def test_csv_quotes_what_rfc_4180_asks_and_neutralises_formulas_in_values():
    specs = parse_fields([{"name": "note"}, {"name": "net", "type": "amount"}])
    row = {"id": "t1", "input": json.dumps({"files": [{"name": "a.pdf"}], "options": {}}), "status": "completed",
           "errors": "[]", "result": json.dumps({"kv": {"company": "=cmd|' /C calc'!A0", "address": "1 Main St,\nSpringfield"},
                                                 "fields_requested": {"note": {"value": 'say "hi"', "type": "string"},
                                                                      "net": {"value": -5.5, "type": "amount",
                                                                              "currency": "EUR"}}})}
    text = b"".join(csv_lines([task_record(row, specs)], specs)).decode()
    header, cells = list(csv.reader(io.StringIO(text, newline="")))
    got = dict(zip(header, cells))
    assert got["company"] == "'=cmd|' /C calc'!A0"
    assert got["address"] == "1 Main St,\nSpringfield" and '"1 Main St,\nSpringfield"' in text
    assert got["field:note"] == 'say "hi"' and '"say ""hi"""' in text
    assert (got["field:net"], got["field:net:currency"]) == ("-5.50", "EUR")
    assert got["total"] == "" and got["error"] == ""
