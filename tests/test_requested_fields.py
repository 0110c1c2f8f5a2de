"""Requested fields and provenance on real corpus documents, through both extractors and the HTTP API."""
from __future__ import annotations

import json

import pytest

from app import create_app, ocr, pages
from app.extract.fields import MAX_FIELDS, MAX_NAME_CHARS, parse_fields
from app.extract.llm import LLMExtractor
from app.extract.local import LocalExtractor
from bench import quality_score
from conftest import llm_settings, wait_for


def _read(path) -> list:
    data = path.read_bytes()
    media_type = pages.detect_media_type(data)
    count = pages.inspect_upload(data, max_pixels=10**9, max_pages=100).pages
    engine = ocr.Tesseract(timeout=120)
    return [engine.read(pages.load_page(data, media_type, i)) for i in range(count)]


@pytest.fixture(scope="module")
def receipt(corpus):
    doc = corpus["receipts"][0]
    return doc, _read(doc.path)


@pytest.fixture(scope="module")
def german_invoice(corpus):
    """An invoice whose labels are German ("Rechnungsnr.", "Rechnungsdatum")."""
    doc = next(d for d in corpus["invoices"] if "Rechnungsnr" in "".join(p.text for p in _read(d.path)[:1]))
    return doc, _read(doc.path)


def _inside(box, page) -> bool:
    return 0 <= box[0] < box[2] <= page.width and 0 <= box[1] < box[3] <= page.height


def _text_under(box, page) -> str:
    """The words of the page whose centres fall in the box."""
    words = [w for line in page.lines for w in line["words"]
             if box[0] <= (w["box"][0] + w["box"][2]) / 2 <= box[2] and box[1] <= (w["box"][1] + w["box"][3]) / 2 <= box[3]]
    return " ".join(w["text"] for w in words)


def test_receipt_fields_by_name_with_one_the_receipt_lacks(receipt):
    doc, read = receipt
    specs = parse_fields(["total", {"name": "date", "type": "date"}, {"name": "due_date", "type": "date"}])
    data = LocalExtractor().extract("document", read, fields=specs).data
    asked = data["fields_requested"]
    assert asked["total"]["type"] == "amount"
    assert quality_score.amount(asked["total"]["value"]) == quality_score.amount(doc.fields["total"])
    assert asked["date"]["value"] == quality_score.day_first_iso(doc.fields["date"])
    assert asked["due_date"] == {"value": None, "type": "date", "page": None, "box": None}  # not invented
    page = read[asked["total"]["page"] - 1]
    assert _inside(asked["total"]["box"], page)
    assert quality_score.amount_in_text(doc.fields["total"], _text_under(asked["total"]["box"], page))


def test_provenance_points_at_the_printed_values(receipt):
    doc, read = receipt
    data = LocalExtractor().extract("document", read).data
    assert set(data["provenance"]) <= set(data["kv"])
    for key in ("date", "total", "company"):
        where = data["provenance"][key]
        page = read[where["page"] - 1]
        assert _inside(where["box"], page)
    company = data["provenance"]["company"]["box"]
    assert quality_score.similar(_text_under(company, read[0]), data["kv"]["company"])


def test_fields_answered_by_labels_in_another_language(german_invoice):
    doc, read = german_invoice
    specs = parse_fields(["invoice_number", {"name": "invoice date", "type": "date"},
                          {"name": "amount", "type": "amount"}, {"name": "purchase order", "type": "string"}])
    asked = LocalExtractor().extract("document", read, fields=specs).data["fields_requested"]
    assert quality_score.same_id(asked["invoice_number"]["value"], doc.fields["invoice_number"])
    assert asked["invoice date"]["value"] == doc.fields["date"]
    assert asked["amount"]["value"] == float(doc.fields["total"]) and asked["amount"]["currency"] == doc.fields["currency"]
    assert asked["purchase order"]["value"] is None


def test_llm_requested_fields_are_in_its_schema_and_located(fake, receipt):
    doc, read = receipt
    llm = LLMExtractor(api_key="test-key", base_url=fake.base_url, model="fake-model", timeout=10)
    try:
        specs = parse_fields([{"name": "total", "type": "amount"}, {"name": "loyalty_card", "type": "string"}])
        data = llm.extract("document", read, fields=specs).data
    finally:
        llm.close()
    schema = fake.requests[0]["response_format"]["json_schema"]["schema"]
    assert set(schema["properties"]["fields_requested"]["properties"]) >= {"total", "loyalty_card"}
    assert {"date", "total", "company", "invoice_number"} <= set(schema["properties"]["kv"]["properties"])
    asked = data["fields_requested"]
    assert quality_score.amount(asked["total"]["value"]) == quality_score.amount(doc.fields["total"])
    page = read[asked["total"]["page"] - 1]
    assert quality_score.amount_in_text(doc.fields["total"], _text_under(asked["total"]["box"], page))
    assert asked["loyalty_card"]["value"] is None
    assert data["provenance"]["total"] == {"page": asked["total"]["page"], "box": asked["total"]["box"]}


@pytest.mark.parametrize("fields, offending", [
    ("invoice_number", "options.fields must be"),
    ([], "options.fields must be"),
    ([{"name": ""}], "options.fields[0].name"),
    (["ok", 5], "options.fields[1]"),
    (["ok", {"name": "x", "type": "money"}], "options.fields[1].type"),
    ([{"name": "x", "colour": "red"}], "options.fields[0] has unknown"),
    (["a" * (MAX_NAME_CHARS + 1)], "options.fields[0].name"),
    ([f"f{i}" for i in range(MAX_FIELDS + 1)], f"at most {MAX_FIELDS}"),
    (["total", "total"], "requested twice"),
    ([{"name": "x", "description": "d" * 301}], "options.fields[0].description"),
    ([[[[[[]]]]]], "options.fields[0]"),
])
def test_invalid_fields_are_refused_naming_the_item(client, fields, offending):
    r = client.post("/api/tasks", json={"type": "document", "images": ["aGVsbG8="], "options": {"fields": fields}})
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error["code"] == "invalid_fields" and offending in error["message"]


@pytest.mark.parametrize("depth", [64, 5000])
def test_deeply_nested_fields_get_a_400(client, depth):
    nested = "[" * depth + "]" * depth
    r = client.post("/api/tasks", data={"type": "document", "options": '{"fields": ' + nested + "}"},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and r.get_json()["error"]["code"] in ("invalid_options", "invalid_fields")
    body = '{"type": "document", "images": ["aGVsbG8="], "options": {"fields": ' + nested + "}}"
    r = client.post("/api/tasks", data=body, content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]["code"] in ("invalid_json", "invalid_options", "invalid_fields")


def test_other_fields_are_other_work_for_the_cache(service, http, receipt):
    doc, _ = receipt
    data = doc.path.read_bytes()

    def submit(fields):
        r = http.post(f"{service.url}/api/tasks", files={"file": ("r.jpg", data, "image/jpeg")},
                      data={"type": "document", "options": json.dumps({"fields": fields})})
        assert r.status_code == 202, r.text
        return wait_for(http, service.url + r.headers["Location"], timeout=120)

    first = submit(["total"])
    assert first["status"] == "completed" and set(first["result"]["fields_requested"]) == {"total"}
    other = submit(["date"])
    assert not other["result"].get("cached") and set(other["result"]["fields_requested"]) == {"date"}
    again = submit(["total"])
    assert again["result"]["cached"] is True
    assert again["result"]["fields_requested"] == first["result"]["fields_requested"]
    assert first["result"]["provenance"]["total"]["page"] == 1


def test_llm_service_answers_requested_fields(tmp_path, start_service, http, fake, corpus):
    doc = corpus["receipts"][0]
    service = start_service(create_app(llm_settings(tmp_path, fake)))
    r = http.post(f"{service.url}/api/tasks", files={"file": ("r.jpg", doc.path.read_bytes(), "image/jpeg")},
                  data={"type": "document", "options": json.dumps({"fields": [{"name": "date", "type": "date"}]})})
    task = wait_for(http, service.url + r.headers["Location"], timeout=120)
    assert task["status"] == "completed", task["errors"]
    assert task["result"]["fields_requested"]["date"]["value"] == quality_score.day_first_iso(doc.fields["date"])
    assert task["result"]["extractor"] == "llm:fake-model"
