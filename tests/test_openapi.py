"""The OpenAPI document: it covers every route and error, its page works, and the live server conforms."""
from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings as hsettings, strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app import create_app
from app.auth import create_key
from app.openapi import build_spec
from conftest import make_settings, wait_for
from drawing import blank_form_lines, draw_page, png_bytes, receipt_lines

APP_DIR = Path(__file__).resolve().parent.parent / "app"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
DOCUMENTED_PREFIXES = ("/api/", "/metrics")
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
# Every built-in check (no 5xx, status codes, content types, headers and bodies as documented, invalid
# input refused, auth enforced) but one: schema-valid random bytes are not a readable image, so a 400 is right.
EXCLUDED_CHECKS = [positive_data_acceptance]
# A request over a documented limit (more files than maxItems) is refused with 413, which is a refusal too.
CONFIG = schemathesis.config.SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {
    "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5xx"]}}})
EXAMPLES_PER_OPERATION = 25
BUDGET_SECONDS = 60.0


def _routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(DOCUMENTED_PREFIXES):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        out |= {(path, m) for m in rule.methods & METHODS}
    return out


def _documented(spec) -> set[tuple[str, str]]:
    return {(path, m.upper()) for path, item in spec["paths"].items() for m in item if m.upper() in METHODS}


def test_every_route_is_documented_and_every_documented_route_exists(app):
    routes, documented = _routes(app), _documented(build_spec())
    assert routes - documented == set(), "routes missing from app/openapi.py"
    assert documented - routes == set(), "documented operations with no route"


def test_every_error_code_raised_in_the_code_is_documented_with_its_status():
    spec = build_spec()
    documented = set()
    for item in spec["paths"].values():
        for op in item.values():
            for status, response in op["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                codes = schema.get("properties", {}).get("error", {}).get("properties", {}).get("code", {}).get("enum", [])
                documented |= {(int(status), c) for c in codes}
    raised = set()
    for path in APP_DIR.rglob("*.py"):
        for status, code in re.findall(r'BadInput\(\s*(\d+),\s*"([a-z0-9_]+)"', path.read_text()):
            raised.add((int(status), code))
    assert raised, "the scan found no BadInput at all: the pattern is stale"
    assert raised - documented == set()


def test_inputs_the_fuzzer_found_are_client_errors(client):
    # Each of these was a 500 once: int() refuses '²' although str.isdigit() accepts it; SQLite refuses 2**64.
    assert client.get("/api/tasks?cursor=78805499709933727761").get_json()["error"]["code"] == "invalid_cursor"
    assert client.get("/api/tasks?limit=²").get_json()["error"]["code"] == "invalid_limit"
    r = client.post("/api/tasks", data={"type": "document", "priority": "²"}, content_type="multipart/form-data")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_priority"


def test_document_is_served_and_resolves(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyAuth"}
    task = spec["components"]["schemas"]["Task"]
    assert {"status", "progress", "result", "errors"} <= set(task["required"])
    assert spec["components"]["schemas"]["Options_form_filling"]["required"] == ["library"]
    refs = set(_refs(spec))
    assert refs and refs <= {f"#/components/schemas/{name}" for name in spec["components"]["schemas"]}


def _refs(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_docs_page_loads_its_assets_without_inline_script(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "style=" not in html  # CSP default-src 'self' refuses inline code
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', html)
    assert len(assets) >= 3
    for url in assets:
        with client.get(url) as response:
            assert response.status_code == 200, url
            assert len(response.data) > 100, url
    with client.get("/static/api-docs.js") as response:
        assert b"/api/openapi.json" in response.data
    assert client.get("/api/docs/assets/..%2Fschema.sql").status_code == 404


def _seed(http, url: str) -> dict:
    """Real tasks of every type (and a batch, a cancelled task) so responses carry real results."""
    page = png_bytes(draw_page(receipt_lines()))
    form = png_bytes(draw_page(blank_form_lines()))
    doc = http.post(f"{url}/api/process_document", files={"file": ("r.png", page, "image/png")}, timeout=30).json()
    frm = http.post(f"{url}/api/process_form", files={"file": ("f.png", form, "image/png")}, timeout=30).json()
    done = wait_for(http, f"{url}/api/tasks/{doc['id']}")
    assert done["status"] == "completed"
    fill = http.post(f"{url}/api/process_form_filling", json={
        "images": [base64.b64encode(form).decode()], "options": {"library": [doc["id"], {"kv": {"name": "Ada"}}]}},
        timeout=30).json()
    batch = http.post(f"{url}/api/batches", data={"type": "document", "options": '{"no_cache": true}'},
                      files=[("file", ("a.png", page, "image/png")), ("file", ("b.png", form, "image/png"))],
                      timeout=30).json()
    cancelled = http.post(f"{url}/api/tasks", data={"type": "form", "priority": "0"},
                          files={"file": ("p.png", png_bytes(draw_page(["Cancel me"])), "image/png")}, timeout=30).json()
    assert http.delete(f"{url}/api/tasks/{cancelled['id']}", timeout=30).status_code in (200, 202)
    for task_id in (frm["id"], fill["id"], cancelled["id"], *batch["task_ids"]):
        assert wait_for(http, f"{url}/api/tasks/{task_id}")["status"] in ("completed", "cancelled")
    return {"task_id": fill["id"], "batch_id": batch["id"]}


def test_live_server_conforms_to_the_document(tmp_path, start_service, http):
    app = create_app(make_settings(tmp_path, rate_limit=0))  # the fuzzer is faster than the default limit
    key = create_key(app.extensions["docproc"].db, "fuzz")
    service = start_service(app)
    auth = {"Authorization": f"Bearer {key}"}
    http.headers.update(auth)
    known = _seed(http, service.url)
    del http.headers["Authorization"]  # schemathesis adds it per case, and takes it away to probe enforcement
    schema = schemathesis.openapi.from_url(f"{service.url}/api/openapi.json", config=CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]
    # schemathesis leaves out the operation it loaded the document from
    assert {o.label for o in operations} == {f"{m} {p}" for p, m in _documented(build_spec())} - {"GET /api/openapi.json"}
    end = time.monotonic() + BUDGET_SECONDS
    calls: dict[str, int] = {}
    seen: set[tuple[str, int]] = set()
    for operation in operations:
        if time.monotonic() > end:
            break
        strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
        names = {p.name for p in operation.path_parameters}
        if names and names <= set(known):  # also aim at ids that exist, not only at random ones
            strategies.append(operation.as_strategy(path_parameters={n: known[n] for n in names}))

        @given(case=st.one_of(strategies))
        @hsettings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                   phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call_and_validate(base_url=service.url, session=http, headers=auth, excluded_checks=EXCLUDED_CHECKS,
                                              timeout=30)
            calls[operation.label] = calls.get(operation.label, 0) + 1
            seen.add((operation.label, response.status_code))

        run()
    assert len(calls) == len(operations), f"ran out of time after {sorted(calls)}"
    assert sum(calls.values()) >= len(operations) * 3
    # Real objects went through the response checks too, not only errors.
    assert {("GET /api/tasks/{task_id}", 200), ("GET /api/batches/{batch_id}", 200), ("GET /api/tasks", 200),
            ("DELETE /api/tasks/{task_id}", 409), ("GET /api/tasks/{task_id}/events", 200),
            ("GET /api/batches/{batch_id}/export", 200), ("GET /api/batches/{batch_id}/export", 400)} <= seen, sorted(seen)


def test_docs_page_renders_every_operation_in_chromium_under_the_csp(service):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (bash dev.sh test does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright (test extra) is missing")
    problems = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            response = page.goto(service.url + "/api/docs")
            assert "default-src 'self'" in response.headers["content-security-policy"]
            page.locator(".opblock").first.wait_for(timeout=30_000)
            assert page.locator(".opblock").count() == len(_documented(build_spec()))
            page.locator(".opblock-summary", has_text="Server-sent events").first.click()
            page.get_by_text("Clients should stop on").wait_for(timeout=10_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
        finally:
            browser.close()
    assert problems == []  # a CSP refusal shows up here as a console error


def test_what_the_server_refuses_by_shape_the_document_refuses_too(client):
    spec = client.get("/api/openapi.json").get_json()
    body = spec["paths"]["/api/tasks"]["post"]["requestBody"]["content"]
    form, js = body["multipart/form-data"]["schema"]["properties"], body["application/json"]["schema"]["properties"]
    settings = client.application.extensions["docproc"].settings
    assert form["options"]["minLength"] >= 2  # an empty options field is not JSON, so not "schema-valid"
    assert form["file"]["maxItems"] == js["images"]["maxItems"] == settings.max_files
    batch = spec["paths"]["/api/batches"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert batch["properties"]["file"]["maxItems"] == settings.max_batch_files
    assert "507" in spec["paths"]["/api/tasks"]["post"]["responses"]
