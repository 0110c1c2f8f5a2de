"""The web page at `/`: served under a strict CSP, driven end to end in headless Chromium."""
from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from app.auth import create_key
from bench import quality_score
from drawing import blank_form_lines, draw_page, invoice_lines, png_bytes, receipt_lines

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 60_000
LOW_CONFIDENCE = 60  # app.js marks words and lines under this
# Receipts tried in this order, the first whose total the local extractor reads right is used: the
# first three are levelled by a small angle before OCR (so the boxes are not the upload's pixels).
RECEIPTS = ("090", "050", "100", "010", "060")
TOTAL_WORDS = re.compile(r"total|jumlah|amount|nett", re.I)


def test_page_and_assets_are_served_without_inline_code(client):
    r = client.get("/", buffered=True)
    assert r.status_code == 200 and r.mimetype == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    html = r.get_data(as_text=True)
    assert '<script src="/static/app.js" defer></script>' in html
    assert '<link rel="stylesheet" href="/static/app.css">' in html
    # Nothing the CSP would block: no inline script bodies, style attributes or on* handlers.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\sstyle=|<style|\son[a-z]+=", html)
    for asset, mimetype in (("app.js", "text/javascript"), ("app.css", "text/css"), ("favicon.svg", "image/svg+xml")):
        r = client.get(f"/static/{asset}", buffered=True)
        assert r.status_code == 200 and r.mimetype == mimetype, asset
    # The DOM is built from text nodes only: data from the server can never become markup.
    script = client.get("/static/app.js", buffered=True).get_data(as_text=True)
    assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|eval\(", script)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (bash dev.sh test does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright (test extra) is missing")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (own localStorage); console errors and page errors are collected."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.problems = []
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    yield page
    context.close()


def png_file(name: str, lines: list[str]) -> dict:
    return {"name": name, "mimeType": "image/png", "buffer": png_bytes(draw_page(lines))}


def finished_card(page, name: str):
    """The task card of this file once it is completed."""
    card = page.locator("article.task", has=page.locator(".task-name", has_text=name))
    card.and_(page.locator('[data-status="completed"]')).wait_for()
    return card


def kv_cells(card, label: str):
    """The value cells of the table row whose heading is exactly `label`."""
    return card.locator("table.kv tr", has=card.page.locator("th", has_text=re.compile(f"^{re.escape(label)}$"))).locator("td")


def test_receipt_then_form_filling_end_to_end(service, http, page):
    page.goto(service.url + "/")
    page.locator("#files").set_input_files([png_file("receipt.png", receipt_lines())])
    assert page.locator("#file-list li").inner_text().startswith("receipt.png")
    page.locator("input[name=type][value=document]").check()
    page.locator("#submit").click()

    card = finished_card(page, "receipt.png")
    task_id = card.get_attribute("data-id")
    assert http.get(f"{service.url}/api/tasks/{task_id}").json()["status"] == "completed"
    assert card.locator(".badge").inner_text().lower() == "completed"
    assert card.locator("h3.title").inner_text() == "ACME Store"
    assert kv_cells(card, "Total").inner_text() == "32.50"
    assert kv_cells(card, "Receipt number").inner_text() == "10023"
    ocr = card.locator("pre.ocr").inner_text()
    assert "Total $32.50" in ocr and "ACME Store" in ocr
    assert re.search(r"wait \d+\.\d+ s · run \d+\.\d+ s", card.locator(".task-meta").inner_text())

    row = page.locator(f'#recent tr[data-id="{task_id}"]')
    row.wait_for()
    assert "completed" in row.inner_text().lower() and task_id[:8] in row.inner_text()
    assert re.search(r"\d+\.\d+ s", row.locator("td.num").last.inner_text())

    # Form filling: the receipt just processed is offered as a source, plus values given as JSON.
    page.locator("#files").set_input_files([png_file("membership-form.png", blank_form_lines())])
    page.locator("input[name=type][value=form_filling]").check()
    page.locator(f'#library-tasks input[value="{task_id}"]').check()
    page.locator("#library-json").fill(json.dumps({"Full Name": "Jane Doe"}))
    page.locator("#submit").click()

    form_card = finished_card(page, "membership-form.png")
    assert kv_cells(form_card, "Full Name").first.inner_text() == "Jane Doe"
    email = kv_cells(form_card, "Email")
    assert email.first.inner_text() == "info@acme-store.com" and email.last.inner_text() == "receipt.png"
    assert email.last.locator(".source").get_attribute("title") == task_id
    assert form_card.locator("h4", has_text="Filled fields").text_content() == "Filled fields · 4 of 6"
    assert "Date of Birth" in form_card.locator("ul.tags.missing").inner_text()
    assert "Membership Application Form" in form_card.locator("pre.ocr").inner_text()

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(f'#recent tr[data-id="{form_card.get_attribute("data-id")}"]').wait_for()
    page.screenshot(path=str(ARTIFACTS / "web.png"), full_page=True)
    assert page.problems == []


def test_several_files_one_task_each_and_reopening_from_the_list(service, http, page):
    page.goto(service.url + "/")
    page.locator("#files").set_input_files([png_file("receipt.png", receipt_lines()),
                                            png_file("invoice.png", invoice_lines())])
    assert page.locator("#submit").inner_text() == "Process 2 files"
    page.locator("input[name=type][value=form]").check()
    page.locator("#submit").click()
    invoice = finished_card(page, "invoice.png")
    finished_card(page, "receipt.png")
    assert page.locator("article.task").count() == 2
    assert "INVOICE" in invoice.locator("pre.ocr").inner_text()
    assert kv_cells(invoice, "Invoice number").inner_text() == "INV-2024-0042"
    listed = http.get(f"{service.url}/api/tasks", params={"type": "form"}).json()["tasks"]
    assert {t["id"] for t in listed} == {c.get_attribute("data-id") for c in page.locator("article.task").all()}

    # A fresh page knows nothing of these cards; a click on a recent row opens the task again.
    invoice_id = invoice.get_attribute("data-id")
    page.reload()
    assert page.locator("article.task").count() == 0
    page.locator(f'#recent tr[data-id="{invoice_id}"]').click()
    reopened = page.locator(f'article.task[data-id="{invoice_id}"]')
    assert reopened.locator("h3.title").inner_text() == "Northwind Traders Ltd"
    assert page.problems == []


def test_form_filling_needs_a_source_and_rejections_are_shown(service, page):
    page.goto(service.url + "/")
    page.locator("#files").set_input_files([png_file("form.png", blank_form_lines())])
    page.locator("input[name=type][value=form_filling]").check()
    page.locator("#submit").click()
    assert "Pick at least one" in page.locator("#form-error").inner_text()
    assert page.locator("#file-list li").count() == 1  # nothing was sent, the file is still there

    page.locator("#library-json").fill("{not json")
    page.locator("#submit").click()
    assert page.locator("#form-error").inner_text() == "The values are not valid JSON."

    # The server's own checks come back on a card: an unknown language is refused.
    page.locator("#library-json").fill('{"Name": "Jane"}')
    page.locator("#lang").fill("xxx")
    page.locator("#submit").click()
    rejected = page.locator("article.task[data-status=failed]")
    assert "unsupported_language" in rejected.locator(".task-errors").inner_text()
    assert page.locator("#file-list li").count() == 0


def test_api_key_is_asked_for_kept_and_sent_as_bearer(service, page):
    key = create_key(service.rt.db, "acme")  # from now on every /api request needs a key
    page.goto(service.url + "/")
    page.locator("#banner", has_text="needs an API key").wait_for()
    page.locator("#recent", has_text="Could not load tasks: an API key is required").wait_for()
    page.locator("#api-key").fill(key)
    with page.expect_request(lambda r: r.url.startswith(service.url + "/api/tasks")) as request:
        page.locator("#save-key").click()
    assert request.value.headers.get("authorization") == f"Bearer {key}"
    page.locator("#recent", has_text="No tasks yet.").wait_for()
    assert page.locator("#banner").is_hidden()

    page.problems.clear()  # the 401s before the key was saved
    page.reload()
    assert page.locator("#api-key").input_value() == key
    page.locator("#files").set_input_files([png_file("receipt.png", receipt_lines())])
    page.locator("#submit").click()
    card = finished_card(page, "receipt.png")
    task_id = card.get_attribute("data-id")
    assert service.rt.db.get_task(task_id)["tenant"] == "acme"
    assert page.locator("#banner").is_hidden()
    # The page image needs the key too: fetched with it, shown from a blob: URL.
    assert loaded_image(card, 1).get_attribute("src").startswith("blob:")
    assert page.problems == []


# -- the document view ----------------------------------------------------------------------------
def kv_row(card, label: str):
    return card.locator("table.kv tr", has=card.page.locator("th", has_text=re.compile(f"^{re.escape(label)}$")))


def requested_row(card, name: str):
    return card.locator(f'table.requested tr[data-field="{name}"]')


def loaded_image(card, number: int):
    """The page image of page `number` once the browser has decoded it."""
    img = card.locator(f'.page-view[data-page="{number}"] img.page-img')
    img.wait_for()
    card.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    return img


def shown_box(card, img, record: dict) -> list[float]:
    """The visible highlight in pixels of the page image as read (the result's coordinate system)."""
    spot = card.locator(".box.spot:not([hidden])")
    spot.wait_for()
    # Both rectangles at one moment: the page may still be scrolling smoothly to the box.
    s, i = spot.evaluate("(spot, img) => [spot.getBoundingClientRect(), img.getBoundingClientRect()]"
                         ".map(r => ({x: r.x, y: r.y, width: r.width, height: r.height}))", img.element_handle())
    sx, sy = record["width"] / i["width"], record["height"] / i["height"]
    return [(s["x"] - i["x"]) * sx, (s["y"] - i["y"]) * sy, (s["x"] + s["width"] - i["x"]) * sx,
            (s["y"] + s["height"] - i["y"]) * sy]


def unrotate(point, degrees: float, size_out, size_in):
    """Where a point of an image turned by PIL's rotate(degrees, expand=True) lay before the turn."""
    a = -math.radians(degrees)
    x, y = point[0] - size_out[0] / 2, point[1] - size_out[1] / 2
    return (math.cos(a) * x + math.sin(a) * y + size_in[0] / 2, -math.sin(a) * x + math.cos(a) * y + size_in[1] / 2)


def to_upload(box, record: dict, original_size) -> list[float]:
    """A box of the page as read mapped back to the pixels of the uploaded image (turn, then levelling undone)."""
    turned = Image.new("L", original_size).rotate(-record["rotation"], expand=True).size
    assert Image.new("L", turned).rotate(record["deskew"], expand=True).size == (record["width"], record["height"]), \
        "the page as read is the upload turned and levelled, nothing else"
    corners = [(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])]
    back = [unrotate(unrotate(c, record["deskew"], (record["width"], record["height"]), turned),
                     -record["rotation"], turned, original_size) for c in corners]
    xs, ys = [c[0] for c in back], [c[1] for c in back]
    return [min(xs), min(ys), max(xs), max(ys)]


def printed_lines(path: Path) -> list[tuple[list[int], str]]:
    """The receipt's truth: (bounding box in the upload's pixels, text) of every printed line."""
    rows = []
    with open(path.with_suffix(".lines.csv"), newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if len(row) >= 9:
                xs, ys = [int(v) for v in row[0:8:2]], [int(v) for v in row[1:8:2]]
                rows.append(([min(xs), min(ys), max(xs), max(ys)], ",".join(row[8:]).strip()))
    return rows


def total_lines(path: Path, total: str) -> list[list[int]]:
    """Boxes of the printed lines that give the total: its amount, on a line (or beside a cell) saying total."""
    lines = printed_lines(path)
    labels = [box for box, text in lines if TOTAL_WORDS.search(text)]

    def same_row(a, b):  # overlapping heights: a skewed scan shifts a row's cells up or down a little
        return min(a[3], b[3]) > max(a[1], b[1])

    want = quality_score.amount(total)
    return [box for box, text in lines if quality_score.amount(text) == want
            and (TOTAL_WORDS.search(text) or any(same_row(box, label) for label in labels))]


def overlap(inner, outer) -> float:
    """The share of `inner`'s area that lies in `outer`."""
    w = min(inner[2], outer[2]) - max(inner[0], outer[0])
    h = min(inner[3], outer[3]) - max(inner[1], outer[1])
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return max(w, 0) * max(h, 0) / area if area > 0 else 0.0


@pytest.fixture(scope="module")
def receipts(corpus):
    return {d.name: d for d in corpus["receipts"]}


def click_total_and_check_its_box(page, card, result: dict, doc, turn: int = 0) -> None:
    """Click the total: the highlighted box lies over the receipt's printed total line (`turn`: the upload's)."""
    where = result["provenance"]["total"]
    record = result["pages"][where["page"] - 1]
    img = loaded_image(card, where["page"])
    kv_row(card, "Total").click()
    page.wait_for_function("spot => { const r = spot.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; }",
                           arg=card.locator(".box.spot:not([hidden])").element_handle())  # scrolled into view
    page.wait_for_timeout(800)  # the smooth scroll has ended: rows that slid under the still mouse change nothing
    assert card.locator(".box.spot:not([hidden])").get_attribute("data-key") == "total"
    box = shown_box(card, img, record)
    assert box == pytest.approx(where["box"], abs=2 * record["width"] / 1000 + 1)
    with Image.open(doc.path) as original:
        size = original.size
    turned = Image.new("L", size).rotate(turn, expand=True).size
    upload = to_upload(box, record, turned)
    xs, ys = zip(*(unrotate(c, turn, turned, size) for c in ((upload[0], upload[1]), (upload[2], upload[3]))))
    upload = [min(xs), min(ys), max(xs), max(ys)]
    truth = total_lines(doc.path, doc.fields["total"])
    assert truth, f"{doc.name}: the truth has no printed total line"
    assert max(overlap(upload, line) for line in truth) >= 0.6, (doc.name, turn, upload, truth)
    cx, cy = (upload[0] + upload[2]) / 2, (upload[1] + upload[3]) / 2
    assert any(b[0] - 3 <= cx <= b[2] + 3 and b[1] - 3 <= cy <= b[3] + 3 for b in truth), (doc.name, turn, upload, truth)


def test_a_real_receipt_shows_its_total_where_it_is_printed(service, http, page, receipts):
    page.goto(service.url + "/")
    page.locator("input[name=type][value=document]").check()
    for name in RECEIPTS:
        doc = receipts[name]
        page.locator("#files").set_input_files(str(doc.path))
        page.locator("#submit").click()
        card = finished_card(page, doc.path.name)
        task = http.get(f"{service.url}/api/tasks/{card.get_attribute('data-id')}").json()
        if quality_score.amount(task["result"]["kv"].get("total")) == quality_score.amount(doc.fields["total"]):
            break
    else:
        pytest.fail(f"the local extractor read none of the totals of receipts {RECEIPTS} right")
    result = task["result"]
    record = result["pages"][0]
    img = loaded_image(card, 1)
    assert img.evaluate("img => img.naturalWidth") == min(1000, record["width"])

    # Every text line is a box; low-confidence lines and words stand out.
    assert card.locator(".box.line").count() == len(record["lines"])
    low = sum(x["confidence"] < LOW_CONFIDENCE for x in record["lines"] + record["words"])
    assert card.locator(".box.low").count() == low
    # A box tells its text and confidence.
    best = max(range(len(record["lines"])), key=lambda i: record["lines"][i]["confidence"])
    line = record["lines"][best]
    card.locator(".box.line").nth(best).click()
    info = card.locator(".box-info")
    assert info.inner_text().startswith(f"Line {best + 1} · “{line['text']}” · confidence {int(line['confidence'] + 0.5)}%")

    # Clicking the total highlights the words it was read from, over the receipt's printed total line.
    click_total_and_check_its_box(page, card, result, doc)
    # ... and the line it was read from names the facts it gives.
    total_box = result["provenance"]["total"]["box"]
    holder = max(range(len(record["lines"])), key=lambda i: overlap(total_box, record["lines"][i]["box"]))
    card.locator(".box.line").nth(holder).dispatch_event("mouseenter")
    assert re.search(r"· gives (.+, )?total(,|$)", info.inner_text()), info.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    card.screenshot(path=str(ARTIFACTS / f"web-receipt-{doc.name}-total.png"))
    page.screenshot(path=str(ARTIFACTS / "web-receipt-page.png"), full_page=True)

    # The same receipt scanned upside down: OCR turns it, the preview and the boxes turn with it.
    with Image.open(doc.path) as original:
        upside_down = png_bytes(original.convert("L").rotate(180))
    page.locator("#files").set_input_files([{"name": f"{doc.name}-turned.png", "mimeType": "image/png", "buffer": upside_down}])
    page.locator("#submit").click()
    card = finished_card(page, f"{doc.name}-turned.png")
    result = http.get(f"{service.url}/api/tasks/{card.get_attribute('data-id')}").json()["result"]
    assert result["pages"][0]["rotation"] == 180
    assert quality_score.amount(result["kv"].get("total")) == quality_score.amount(doc.fields["total"])
    click_total_and_check_its_box(page, card, result, doc, turn=180)
    card.screenshot(path=str(ARTIFACTS / f"web-receipt-{doc.name}-turned.png"))
    assert page.problems == []


def test_requested_fields_are_sent_shown_and_located_and_downloads_are_real(service, http, page):
    page.goto(service.url + "/")
    page.locator("#files").set_input_files([png_file("receipt.png", receipt_lines())])
    page.locator("#add-field").click()
    page.locator(".field-row .field-name").last.fill("total")
    page.locator(".field-row .field-type").last.select_option("amount")
    page.locator("#add-field").click()
    page.locator(".field-row .field-name").last.fill("due_date")
    page.locator(".field-row .field-type").last.select_option("date")
    page.locator(".field-row .field-desc").last.fill("when payment is due")
    page.locator("#submit").click()

    card = finished_card(page, "receipt.png")
    options = json.loads(service.rt.db.get_task(card.get_attribute("data-id"))["input"])["options"]
    assert options["fields"] == [{"name": "total", "type": "amount"},
                                 {"name": "due_date", "type": "date", "description": "when payment is due"}]
    assert options["words"] is True
    task = http.get(f"{service.url}/api/tasks/{card.get_attribute('data-id')}").json()
    asked = task["result"]["fields_requested"]
    assert set(asked) == {"total", "due_date"} and asked["due_date"]["value"] is None
    assert asked["total"]["value"] == pytest.approx(float(task["result"]["kv"]["total"]))
    assert card.locator("h4", has_text="Requested fields").text_content() == "Requested fields · 1 of 2 found"
    total = requested_row(card, "total")
    assert total.locator("td").inner_text().startswith(f"{asked['total']['value']:.2f}")
    assert requested_row(card, "due_date").locator("td").inner_text() == "not found"

    # Hovering the requested field shows its box; the one not found has none to show.
    img = loaded_image(card, asked["total"]["page"])
    total.hover()
    assert card.locator(".box.spot:not([hidden])").get_attribute("data-key") == "total"
    record = task["result"]["pages"][asked["total"]["page"] - 1]
    assert shown_box(card, img, record) == pytest.approx(asked["total"]["box"], abs=3)
    requested_row(card, "due_date").hover()
    assert card.locator(".box.spot:not([hidden])").count() == 0

    # The JSON result and the searchable PDF download as real files.
    with page.expect_download() as download:
        card.locator("a.download.json").click()
    assert download.value.suggested_filename == f"{task['id']}.json"
    assert json.loads(Path(download.value.path()).read_text()) == task["result"]
    with page.expect_download() as download:
        card.locator("a.download.pdf").click()
    data = Path(download.value.path()).read_bytes()
    assert data.startswith(b"%PDF") and data == http.get(f"{service.url}/api/tasks/{task['id']}/pdf").content
    pdf = pdfium.PdfDocument(data)
    try:
        assert len(pdf) == len(task["result"]["pages"])
        layer = pdf[0].get_textpage().get_text_bounded()
    finally:
        pdf.close()
    total_line = next(x["text"] for x in record["lines"] if f"{asked['total']['value']:.2f}" in x["text"])
    assert " ".join(total_line.split()) in " ".join(layer.split())
    ARTIFACTS.mkdir(exist_ok=True)
    card.screenshot(path=str(ARTIFACTS / "web-requested-fields.png"))
    assert page.problems == []
