"""The web page at `/`: served under a strict CSP, driven end to end in headless Chromium."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from app.auth import create_key
from drawing import blank_form_lines, draw_page, invoice_lines, png_bytes, receipt_lines

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 60_000


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

    page.reload()
    assert page.locator("#api-key").input_value() == key
    page.locator("#files").set_input_files([png_file("receipt.png", receipt_lines())])
    page.locator("#submit").click()
    task_id = finished_card(page, "receipt.png").get_attribute("data-id")
    assert service.rt.db.get_task(task_id)["tenant"] == "acme"
    assert page.locator("#banner").is_hidden()
