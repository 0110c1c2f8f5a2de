"""The searchable PDF and page previews of finished tasks, over a real socket."""
from __future__ import annotations

import io
import json
import time

import pypdfium2 as pdfium
import pytest
import requests
from PIL import Image

from app import auth, create_app
from app.server import Service
from conftest import make_settings, wait_for
import drawing
import inputs


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    app = create_app(make_settings(tmp_path_factory.mktemp("documents"), rate_limit=0))
    service = Service(app).start()
    yield service
    service.stop(grace=5)
    app.extensions["docproc"].db.close_all()


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


def run(http, url, name, data, **fields) -> dict:
    r = http.post(f"{url}/api/tasks", data={"type": "document", **fields}, files={"file": (name, data)})
    assert r.status_code == 202, r.text
    task = wait_for(http, url + r.headers["Location"])
    assert task["status"] == "completed", task["errors"]
    return task


def pdf_text(data: bytes) -> list[str]:
    pdf = pdfium.PdfDocument(data)
    try:
        return [page.get_textpage().get_text_range() for page in pdf]
    finally:
        pdf.close()


def test_searchable_pdf_of_a_scan_carries_the_ocr_text_from_the_same_run(svc, http):
    task = run(http, svc.url, "scan.png", drawing.png_bytes(inputs.known_page()))
    layer = svc.rt.settings.artifacts_dir / task["id"] / "layer-1.pdf"
    written = layer.stat().st_mtime_ns  # by the task's own tesseract run, before anyone asked for a PDF
    r = http.get(f"{svc.url}/api/tasks/{task['id']}/pdf")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/pdf"
    (text,) = pdf_text(r.content)
    assert " ".join(text.split()) == " ".join(task["result"]["text"].split())
    pdf = pdfium.PdfDocument(r.content)
    kinds = [obj.type for obj in pdf[0].get_objects(max_depth=3)]
    pdf.close()
    assert pdfium.raw.FPDF_PAGEOBJ_IMAGE in kinds  # the page image under the text
    assert layer.stat().st_mtime_ns == written and (layer.parent / "searchable.pdf").exists()
    again = http.get(f"{svc.url}/api/tasks/{task['id']}/pdf")
    assert again.content == r.content  # served from the task's cache


def test_born_digital_pdf_comes_back_as_it_was_sent(svc, http):
    data = inputs.text_pdf([inputs.KNOWN_LINES])
    task = run(http, svc.url, "born.pdf", data)
    assert http.get(f"{svc.url}/api/tasks/{task['id']}/pdf").content == data


def test_mixed_pdf_keeps_text_pages_and_lays_text_over_scanned_ones(svc, http):
    data = inputs.text_pdf([inputs.KNOWN_LINES, []], under=[Image.new("L", (8, 8), 255),
                                                            drawing.draw_page(drawing.letter_lines())])
    task = run(http, svc.url, "mixed.pdf", data)
    assert [p["source"] for p in task["result"]["pages"]] == ["pdf_text", "ocr"]
    first, second = pdf_text(http.get(f"{svc.url}/api/tasks/{task['id']}/pdf").content)
    assert inputs.accuracy(first) == 1.0 and "Dear Mr. Smith" in second


def test_page_preview_is_the_image_the_boxes_refer_to(svc, http):
    lines = drawing.receipt_lines()
    page = drawing.draw_page(lines).rotate(-5, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    task = run(http, svc.url, "skewed.png", drawing.png_bytes(page), options=json.dumps({"words": True}))
    (read,) = task["result"]["pages"]
    assert read["deskew"] == pytest.approx(5.0, abs=0.3)
    r = http.get(f"{svc.url}/api/tasks/{task['id']}/pages/1")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    preview = Image.open(io.BytesIO(r.content)).convert("L")
    assert preview.width == 1000 and abs(preview.height - round(read["height"] * 1000 / read["width"])) <= 1
    scale = 1000 / read["width"]

    def darkness(box) -> float:
        crop = preview.crop(tuple(round(v * scale) for v in box))
        return 255 - sum(crop.histogram()[i] * i for i in range(256)) / (crop.width * crop.height)
    inked = [darkness(w["box"]) for w in read["words"]]
    gaps = [darkness([w["box"][2], w["box"][1], w["box"][2] + 8, w["box"][3]]) for w in read["words"]]
    # Every word box holds ink on the levelled preview; the gaps just right of the words hold less.
    assert min(inked) > 20 and sum(inked) / len(inked) > 3 * sum(gaps) / len(gaps)
    small = http.get(f"{svc.url}/api/tasks/{task['id']}/pages/1", params={"width": 300})
    assert Image.open(io.BytesIO(small.content)).width == 300
    assert (svc.rt.settings.artifacts_dir / task["id"] / "page-1-w300.png").exists()


@pytest.mark.parametrize("path, status, code", [
    ("/pages/2", 404, "page_not_found"), ("/pages/0", 404, "page_not_found"), ("/pages/x", 404, "page_not_found"),
    ("/pages/1?width=50", 400, "invalid_width"), ("/pages/1?width=big", 400, "invalid_width"),
])
def test_preview_refusals(svc, http, path, status, code):
    task = run(http, svc.url, "one.png", drawing.png_bytes(drawing.draw_page(["Only one page here"])))
    r = http.get(f"{svc.url}/api/tasks/{task['id']}{path}")
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)


def test_unfinished_tasks_have_no_documents_and_other_tenants_none_at_all(tmp_path, start_service, http):
    app = create_app(make_settings(tmp_path, rate_limit=0, workers=1, ocr_concurrency=1))
    db = app.extensions["docproc"].db
    mine = {"Authorization": f"Bearer {auth.create_key(db, 'tenant-a')}"}
    theirs = {"Authorization": f"Bearer {auth.create_key(db, 'tenant-b')}"}
    service = start_service(app)
    long = drawing.tiff_bytes([drawing.draw_page(drawing.letter_lines())] * 8)
    r = http.post(f"{service.url}/api/tasks", data={"type": "document"}, files={"file": ("long.tif", long)},
                  headers=mine)
    task_id = r.json()["id"]
    for path in ("/pdf", "/pages/1"):
        r = http.get(f"{service.url}/api/tasks/{task_id}{path}", headers=mine)
        assert r.status_code == 409 and r.json()["error"]["code"] == "task_not_completed"
        other = http.get(f"{service.url}/api/tasks/{task_id}{path}", headers=theirs)
        unknown = http.get(f"{service.url}/api/tasks/6f1c3a52-8a51-4b8e-9a7e-0c2f1d9e4b11{path}", headers=theirs)
        assert other.status_code == 404 and other.content == unknown.content
    http.delete(f"{service.url}/api/tasks/{task_id}", headers=mine)


def test_a_cached_task_has_the_documents_of_the_task_that_did_the_work(svc, http):
    data = drawing.png_bytes(drawing.draw_page(["Cached once", "Read by another task"]))
    first = run(http, svc.url, "c.png", data)
    second = run(http, svc.url, "c.png", data)
    assert second["result"].get("cached") is True
    (text,) = pdf_text(http.get(f"{svc.url}/api/tasks/{second['id']}/pdf").content)
    assert "Cached once" in text
    assert http.get(f"{svc.url}/api/tasks/{second['id']}/pages/1").status_code == 200
    assert first["id"] != second["id"]


def test_retention_removes_the_documents_with_the_files(tmp_path, start_service, http):
    settings = make_settings(tmp_path, file_retention=0.0)
    service = start_service(create_app(settings))
    task = run(http, service.url, "r.png", drawing.png_bytes(drawing.draw_page(["Kept for a while"])))
    assert http.get(f"{service.url}/api/tasks/{task['id']}/pdf").status_code == 200
    assert http.get(f"{service.url}/api/tasks/{task['id']}/pages/1").status_code == 200
    folder = settings.artifacts_dir / task["id"]
    assert sorted(p.name for p in folder.iterdir()) == ["layer-1.pdf", "page-1-w1000.png", "searchable.pdf"]
    time.sleep(0.01)
    report = service.rt.pool.janitor.run_once()
    assert report["files_removed"] == 1 and not folder.exists()
    r = http.get(f"{service.url}/api/tasks/{task['id']}/pdf")
    assert r.status_code == 410 and r.json()["error"]["code"] == "files_expired"
