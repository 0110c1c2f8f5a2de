"""Security end to end: API keys, tenant isolation, rate limits, upload hardening, error bodies, headers."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import sqlite3
import time
import uuid

import pytest
from flask import Blueprint

from app import auth, create_app
from app.server import Service
from app.config import ConfigError
from conftest import db_rows, make_settings
from drawing import blank_form_lines, bomb_png, draw_page, pdf_bytes, png_bytes

TASK_ROUTE_ARGS = ("task_id", "batch_id")


def page(n: int) -> bytes:
    """Small distinct pages, so the result cache never joins two tasks by accident."""
    return png_bytes(draw_page([f"Security page {n}", "Receipt", f"Total: ${n}.00"], size=(900, 400), font_size=32))


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def post_file(http, url, data: bytes, headers=None, *, name="page.png", path="/api/tasks", **fields):
    return http.post(url + path, data={"type": "document", **fields}, headers=headers or {},
                     files={"file": (name, data, "image/png")}, timeout=30)


def wait_as(http, url: str, headers: dict, timeout: float = 60.0) -> dict:
    """wait_for with a key: long-poll until the task has finished (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        task = http.get(url, params={"wait": 5}, headers=headers, timeout=30).json()
        if task["status"] in ("completed", "failed", "cancelled"):
            return task
    raise AssertionError(f"task at {url} did not finish within {timeout}s")


def task_count(settings) -> int:
    return db_rows(settings, "SELECT count(*) AS n FROM tasks")[0]["n"]


@pytest.fixture
def http_only():
    """Factory: serve an app over a real socket without starting its workers, so tasks stay pending."""
    servers = []

    def start(app) -> str:
        service = Service(app).start(workers=False)
        servers.append(service)
        return service.url

    yield start
    for service in servers:
        service.stop(grace=0)


# -- keys -----------------------------------------------------------------------------------------
def test_keys_are_stored_as_hashes_and_listed_without_secrets(app, settings):
    db = app.extensions["docproc"].db
    key = auth.create_key(db, "acme")
    match = re.fullmatch(r"dp_([0-9a-f]{8})_([0-9A-Za-z]{32})", key)
    assert match
    (row,) = db_rows(settings, "SELECT * FROM api_keys")
    assert row["prefix"] == match.group(1) and row["tenant"] == "acme"
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(dict(row)) and match.group(2) not in json.dumps(dict(row))
    listed = auth.list_keys(db)
    assert [k["prefix"] for k in listed] == [match.group(1)]
    assert set(listed[0]) == {"prefix", "tenant", "created_at", "revoked_at", "last_used_at"}
    assert listed[0]["revoked_at"] is None
    assert auth.create_key(db, "acme") != key
    assert auth.revoke_key(db, match.group(1)) is True
    assert auth.revoke_key(db, match.group(1)) is False  # already revoked
    assert auth.revoke_key(db, "ffffffff") is False
    assert auth.list_keys(db)[0]["revoked_at"] is not None
    for bad in ("", "a b", "../x", "x" * 65, "-lead"):
        with pytest.raises(ValueError):
            auth.create_key(db, bad)


def test_tenant_secret_is_created_once_and_per_tenant(app):
    db = app.extensions["docproc"].db
    first = auth.tenant_secret(db, "acme")
    assert len(first) >= 32
    assert auth.tenant_secret(db, "acme") == first
    assert auth.tenant_secret(db, "other") != first


def test_requests_need_a_valid_key_once_one_exists(service, http, app, settings):
    assert http.get(service.url + "/api/tasks").status_code == 200  # anonymous mode on loopback
    db = app.extensions["docproc"].db
    key = auth.create_key(db, "acme")
    prefix = key.split("_")[1]
    wrong_secret = key[:-1] + ("a" if key[-1] != "a" else "b")
    for headers in ({}, bearer(wrong_secret), bearer("nonsense"), {"X-API-Key": "dp_00000000_" + "a" * 32},
                    {"Authorization": f"Basic {key}"}, {"Authorization": "Bearer "}):
        r = http.get(service.url + "/api/tasks", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="docproc"'
    assert http.get(service.url + "/api/tasks", headers=bearer(key)).status_code == 200
    assert http.get(service.url + "/api/tasks", headers={"X-API-Key": key}).status_code == 200
    # Everything touching tasks is closed without a key, and a refused submission stores nothing.
    some_id = str(uuid.uuid4())
    for method, path in (("GET", "/api/stats"), ("GET", f"/api/tasks/{some_id}"), ("GET", f"/api/task_status/{some_id}"),
                         ("GET", f"/api/tasks/{some_id}/events"), ("DELETE", f"/api/tasks/{some_id}"),
                         ("GET", f"/api/batches/{some_id}"), ("GET", "/api/no-such-route")):
        assert http.request(method, service.url + path).status_code == 401, path
    assert post_file(http, service.url, page(1)).status_code == 401
    assert task_count(settings) == 0 and not any(settings.files_dir.rglob("*[0-9a-f]"))
    # Public: the page, its files, health, metrics, the API description.
    for path in ("/", "/static/app.css", "/api/health", "/metrics", "/api/openapi.json", "/api/docs"):
        assert http.get(service.url + path).status_code == 200, path
    assert auth.list_keys(db)[0]["last_used_at"] is not None and auth.list_keys(db)[0]["prefix"] == prefix


def test_revocation_takes_effect_at_once(service, http, app):
    db = app.extensions["docproc"].db
    keep, drop = auth.create_key(db, "acme"), auth.create_key(db, "acme")
    assert http.get(service.url + "/api/tasks", headers=bearer(drop)).status_code == 200
    assert auth.revoke_key(db, drop.split("_")[1])
    r = http.get(service.url + "/api/tasks", headers=bearer(drop))
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert http.get(service.url + "/api/tasks", headers=bearer(keep)).status_code == 200
    # The last key revoked: back to anonymous mode on loopback, keyless requests work again.
    assert http.get(service.url + "/api/tasks").status_code == 401
    auth.revoke_key(db, keep.split("_")[1])
    assert http.get(service.url + "/api/tasks").status_code == 200
    assert http.get(service.url + "/api/tasks", headers=bearer(keep)).status_code == 401


# -- anonymous mode and start-up -------------------------------------------------------------------
@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.4.5.6", True), ("::1", True), ("[::1]", True),
                                           ("localhost", True), ("0.0.0.0", False), ("", False), ("::", False),
                                           ("192.168.1.10", False), ("docproc.example.com", False)])
def test_loopback_detection(host, loopback):
    assert auth.is_loopback(host) is loopback


def test_startup_refuses_anonymous_service_on_public_address(tmp_path, start_service):
    app = create_app(make_settings(tmp_path, host="0.0.0.0"))
    with pytest.raises(ConfigError, match="DOCPROC_ALLOW_ANONYMOUS"):
        start_service(app)  # refused before anything binds or starts
    rt = app.extensions["docproc"]
    assert not rt.pool.started
    # Without keys, a request on a public address is refused too (keys all revoked while running).
    r = app.test_client().get("/api/tasks")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"]
    key = auth.create_key(rt.db, "acme")
    auth.check_startup(rt.settings, rt.db)  # keys exist: starting is fine
    assert app.test_client().get("/api/tasks", headers=bearer(key)).status_code == 200
    rt.db.close_all()


def test_startup_says_when_it_serves_anonymous_requests(tmp_path, caplog):
    loopback = create_app(make_settings(tmp_path / "a"))
    public = create_app(make_settings(tmp_path / "b", host="0.0.0.0", allow_anonymous=True))
    with caplog.at_level(logging.INFO, logger="app.auth"):
        auth.check_startup(loopback.extensions["docproc"].settings, loopback.extensions["docproc"].db)
        auth.check_startup(public.extensions["docproc"].settings, public.extensions["docproc"].db)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("anonymous" in m and "loopback" in m and "127.0.0.1" in m for m in warnings)
    assert any("anonymous" in m and "DOCPROC_ALLOW_ANONYMOUS=1" in m and "0.0.0.0" in m for m in warnings)
    assert public.test_client().get("/api/tasks").status_code == 200  # allowed explicitly
    for a in (loopback, public):
        a.extensions["docproc"].db.close_all()


# -- tenant isolation ------------------------------------------------------------------------------
def test_cross_tenant_sweep(tmp_path, start_service, http):
    app = create_app(make_settings(tmp_path, rate_limit=0))
    db = app.extensions["docproc"].db
    key_a, key_b = auth.create_key(db, "tenant-a"), auth.create_key(db, "tenant-b")
    a, b = bearer(key_a), bearer(key_b)
    service = start_service(app)
    url = service.url
    shared_page = page(1)
    r = post_file(http, url, shared_page, a)
    assert r.status_code == 202
    task_a = wait_as(http, url + r.headers["Location"], a)
    assert task_a["status"] == "completed"
    batch = http.post(url + "/api/batches", data={"type": "document"}, headers=a,
                      files=[("file", ("1.png", page(2), "image/png")), ("file", ("2.png", page(3), "image/png"))]).json()
    unknown = str(uuid.uuid4())

    # Every route that takes a task or batch id: A's id answers exactly like an unknown one.
    swept = 0
    for rule in app.url_map.iter_rules():
        args = [arg for arg in TASK_ROUTE_ARGS if arg in rule.arguments]
        if not args:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for query in ("", "?wait=2"):
                own = task_a["id"] if args == ["task_id"] else batch["id"]
                theirs = http.request(method, url + rule.rule.replace(f"<{args[0]}>", own) + query, headers=b, timeout=30)
                none = http.request(method, url + rule.rule.replace(f"<{args[0]}>", unknown) + query, headers=b, timeout=30)
                assert theirs.status_code == 404, (method, rule.rule)
                assert theirs.content == none.content and theirs.headers["Content-Type"] == none.headers["Content-Type"]
                assert theirs.json()["error"]["code"] == "not_found"
                swept += 1
    assert swept >= 10  # tasks, task_status, events, DELETE, batches, each with and without ?wait
    (row,) = db_rows(service.rt.settings, "SELECT status, cancel_requested FROM tasks WHERE id = ?", task_a["id"])
    assert tuple(row) == ("completed", 0)

    # Lists and stats: empty for B, however asked; A sees its own.
    for params in ({}, {"status": "completed"}, {"type": "document"}, {"cursor": "999999999"}, {"limit": "500"}):
        r = http.get(url + "/api/tasks", params=params, headers=b)
        assert r.status_code == 200 and r.json()["tasks"] == [] and r.json()["next"] is None
    assert len(http.get(url + "/api/tasks", headers=a).json()["tasks"]) == 3
    assert http.get(url + "/api/stats", headers=b).json()["tasks"] == {}
    assert http.get(url + "/api/stats", headers=a).json()["tasks"]["document"]

    # form_filling's library: A's task id is as unknown to B as a made-up id.
    form = png_bytes(draw_page(blank_form_lines()))

    def fill(headers, library_id):
        return http.post(url + "/api/process_form_filling", headers=headers, timeout=30,
                         data={"options": json.dumps({"library": [library_id]})},
                         files={"file": ("form.png", form, "image/png")})

    theirs, none = fill(b, task_a["id"]), fill(b, unknown)
    assert theirs.status_code == 400 and theirs.json()["error"]["code"] == "unknown_library_task"
    assert theirs.text.replace(task_a["id"], unknown) == none.text
    assert fill(a, task_a["id"]).status_code == 202  # the owner may use it

    # The result cache: B's identical upload is new work, A's repeat is served from A's cache.
    again_a = post_file(http, url, shared_page, a).json()
    assert again_a["status"] == "completed" and again_a["result"]["cached"] is True
    r = post_file(http, url, shared_page, b)
    assert r.status_code == 202 and r.json()["status"] == "pending" and r.json()["result"] is None
    task_b = wait_as(http, url + r.headers["Location"], b)
    assert task_b["status"] == "completed" and "cached" not in task_b["result"] and task_b["attempts"] == 1
    assert http.get(url + f"/api/tasks/{task_b['id']}", headers=a).status_code == 404


def test_anonymous_tasks_stay_invisible_to_key_holders(service, http, app):
    r = post_file(http, service.url, page(4))
    assert r.status_code == 202
    key = auth.create_key(app.extensions["docproc"].db, "acme")
    assert http.get(service.url + r.headers["Location"], headers=bearer(key)).status_code == 404
    assert http.get(service.url + "/api/tasks", headers=bearer(key)).json()["tasks"] == []


# -- limits ----------------------------------------------------------------------------------------
def test_token_bucket_refills_at_rate_up_to_burst():
    now = [100.0]
    limiter = auth.RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k") == pytest.approx(0.5)
    assert limiter.take("other") == 0.0  # buckets are per key
    now[0] += 0.5
    assert limiter.take("k") == 0.0 and limiter.take("k") > 0
    now[0] += 3600
    assert [limiter.take("k") for _ in range(4)][-1] > 0  # never more than the burst saved up
    off = auth.RateLimiter(0.0, 1)
    assert all(off.take("k") == 0.0 for _ in range(1000))


def test_rate_limit_per_key_refuses_with_retry_after_and_stores_nothing(tmp_path, start_service, http):
    app = create_app(make_settings(tmp_path, rate_limit=0.01, rate_burst=3))
    db = app.extensions["docproc"].db
    key, other = auth.create_key(db, "acme"), auth.create_key(db, "acme")
    service = start_service(app)
    for _ in range(3):
        assert http.get(service.url + "/api/tasks", headers=bearer(key)).status_code == 200
    r = post_file(http, service.url, page(5), bearer(key))
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    assert task_count(service.rt.settings) == 0 and not any(service.rt.settings.files_dir.rglob("*[0-9a-f]"))
    assert http.get(service.url + "/api/tasks", headers=bearer(other)).status_code == 200  # another key's bucket
    assert http.get(service.url + "/api/health", headers=bearer(key)).status_code == 200  # public paths are not limited


def test_pending_cap_per_tenant(tmp_path, http, http_only):
    app = create_app(make_settings(tmp_path, max_pending_per_tenant=2, rate_limit=0))
    settings = app.extensions["docproc"].settings
    db = app.extensions["docproc"].db
    a, b = bearer(auth.create_key(db, "tenant-a")), bearer(auth.create_key(db, "tenant-b"))
    url = http_only(app)  # no workers: submitted tasks stay pending
    first = [post_file(http, url, page(10 + n), a) for n in range(2)]
    assert [r.status_code for r in first] == [202, 202]
    refused_page = page(12)
    r = post_file(http, url, refused_page, a)
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_pending" and r.headers["Retry-After"]
    assert task_count(settings) == 2
    digest = hashlib.sha256(refused_page).hexdigest()
    assert not (settings.files_dir / digest[:2] / digest).exists()
    # The cap is per tenant: B still gets in, up to its own cap; a batch past it is refused whole.
    assert post_file(http, url, page(13), b).status_code == 202
    r = http.post(url + "/api/batches", data={"type": "document"}, headers=b,
                  files=[("file", (f"{n}.png", page(20 + n), "image/png")) for n in range(2)])
    assert r.status_code == 429 and task_count(settings) == 3
    # A pending task of A cannot be cancelled by B.
    task_id = first[0].json()["id"]
    assert http.delete(f"{url}/api/tasks/{task_id}", headers=b).status_code == 404
    (row,) = db_rows(settings, "SELECT status, cancel_requested FROM tasks WHERE id = ?", task_id)
    assert tuple(row) == ("pending", 0)


# -- uploads ---------------------------------------------------------------------------------------
def test_file_type_comes_from_magic_bytes(service, http):
    png = page(30)
    r = http.post(service.url + "/api/tasks", data={"type": "document"},
                  files={"file": ("scan.pdf", png, "application/pdf")})
    assert r.status_code == 202
    (row,) = db_rows(service.rt.settings, "SELECT input FROM tasks WHERE id = ?", r.json()["id"])
    assert json.loads(row["input"])["files"][0]["media_type"] == "image/png"
    pdf = pdf_bytes([draw_page(["A PDF named like a picture"], size=(600, 300))])
    r = http.post(service.url + "/api/tasks", data={"type": "document"}, files={"file": ("photo.png", pdf, "image/png")})
    (row,) = db_rows(service.rt.settings, "SELECT input FROM tasks WHERE id = ?", r.json()["id"])
    assert json.loads(row["input"])["files"][0]["media_type"] == "application/pdf"
    for body in (b"<html><script>alert(1)</script></html>", b"8BPS" + b"\0" * 64, b"#!/bin/sh\nrm -rf /\n"):
        r = http.post(service.url + "/api/tasks", data={"type": "document"}, files={"file": ("x.png", body, "image/png")})
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"


def test_pixel_bombs_are_a_400_not_a_crash(tmp_path, start_service, http):
    # max_pixels above Pillow's own limit: Pillow's limit still holds, as a 400.
    service = start_service(create_app(make_settings(tmp_path, max_pixels=10**10)))
    for bomb in (bomb_png(20000, 20000), bomb_png(60000, 2000)):
        r = http.post(service.url + "/api/tasks", data={"type": "document"}, files={"file": ("b.png", bomb, "image/png")})
        assert r.status_code == 400 and r.json()["error"]["code"] == "image_too_large"
    assert task_count(service.rt.settings) == 0
    assert http.get(service.url + "/api/health").json()["workers"]["alive"] == service.rt.settings.effective_workers
    assert post_file(http, service.url, page(31)).status_code == 202


def test_client_filenames_never_reach_the_filesystem(service, http, tmp_path):
    names = ["../../etc/x.png", "/tmp/abs-evil.png", "..\\..\\win-evil.png", "....//....//dots.png", "%2e%2e%2fenc.png"]
    ids = []
    for n, name in enumerate(names):
        r = post_file(http, service.url, page(40 + n), name=name)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    settings = service.rt.settings
    for n, task_id in enumerate(ids):
        digest = hashlib.sha256(page(40 + n)).hexdigest()
        (row,) = db_rows(settings, "SELECT input FROM tasks WHERE id = ?", task_id)
        stored = json.loads(row["input"])["files"][0]
        assert stored["sha256"] == digest and "/" not in stored["name"] and "\\" not in stored["name"]
        assert (settings.files_dir / digest[:2] / digest).read_bytes() == page(40 + n)
    everything = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(settings.data_dir) for p in everything)
    assert all(p.parent.parent == settings.files_dir and re.fullmatch(r"[0-9a-f]{64}", p.name)
               for p in everything if p.is_relative_to(settings.files_dir))
    assert not (tmp_path / "etc").exists() and not any("evil" in p.name or "dots" in p.name for p in everything)


def _raw_request(port: int, head: str, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


@pytest.mark.parametrize("claimed", [10 * 1024**3, 1024 * 1024 + 1])
def test_oversized_body_is_refused_before_it_is_read(tmp_path, start_service, claimed):
    service = start_service(create_app(make_settings(tmp_path, max_upload_mb=1)))
    head = (f"POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {claimed}\r\n\r\n")
    # Only a few bytes of the claimed body are ever sent: an answer proves nobody waited for the rest.
    reply = _raw_request(service.port, head, b"--x\r\n")
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert task_count(service.rt.settings) == 0


def test_chunked_body_over_the_limit_is_refused_while_streaming(tmp_path, start_service, http):
    service = start_service(create_app(make_settings(tmp_path, max_upload_mb=1)))
    # No Content-Length to judge by: the cap applies as the body streams in.
    body = iter([b"--x\r\n"] + [b"0" * 65536] * 40)
    r = http.post(service.url + "/api/tasks", data=body, headers={"Content-Type": "multipart/form-data; boundary=x"},
                  timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert task_count(service.rt.settings) == 0


def test_flask_refuses_oversized_bodies_too(tmp_path):
    app = create_app(make_settings(tmp_path, max_upload_mb=1))
    r = app.test_client().post("/api/tasks", data=b"--x\r\n" + b"0" * 2**20, content_type="multipart/form-data; boundary=x")
    assert r.status_code == 413 and r.json["error"]["code"] == "payload_too_large"
    app.extensions["docproc"].db.close_all()


# -- error bodies and headers ----------------------------------------------------------------------
def _app_with_failing_route(tmp_path):
    app = create_app(make_settings(tmp_path))
    boom = Blueprint("test_boom", __name__)

    @boom.get("/api/test-boom")
    def fail():
        raise sqlite3.OperationalError(f"no such column: secret in SELECT secret FROM keys -- {tmp_path}/data/x.sqlite3")

    app.register_blueprint(boom)
    return app


def test_unexpected_errors_are_opaque_500s_with_a_logged_id(tmp_path, start_service, http, caplog):
    service = start_service(_app_with_failing_route(tmp_path))
    with caplog.at_level(logging.ERROR):
        r = http.get(service.url + "/api/test-boom")
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["code"] == "internal_error" and re.fullmatch(r"[0-9a-f]{12}", error["error_id"])
    assert error["error_id"] in error["message"]
    for leak in ("Traceback", "SELECT", "sqlite", str(tmp_path), ".py", "OperationalError"):
        assert leak not in r.text
    logged = [rec for rec in caplog.records if error["error_id"] in rec.getMessage()]
    assert logged and logged[0].exc_info and "SELECT secret" in str(logged[0].exc_info[1])
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_client_errors_leak_no_internals(service, http):
    settings = service.rt.settings
    answers = [
        http.get(service.url + "/api/nowhere"),
        http.put(service.url + "/api/tasks"),  # 405: JSON like the rest, with Allow
        http.post(service.url + "/api/tasks", data=b"{not json", headers={"Content-Type": "application/json"}),
        post_file(http, service.url, b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 20),
        post_file(http, service.url, b"%PDF-1.7\n1 0 obj broken"),
        http.get(service.url + "/api/tasks/not-a-uuid"),
        http.get(service.url + "/api/tasks", params={"cursor": "'; DROP TABLE tasks; --"}),
    ]
    for r in answers:
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/json") and set(r.json()) == {"error"}
        for leak in ("Traceback", str(settings.data_dir), "site-packages", "SELECT ", "sqlite3"):
            assert leak not in r.text
    assert set(answers[1].headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_security_headers_on_every_response(tmp_path, start_service, http):
    service = start_service(_app_with_failing_route(tmp_path))
    url = service.url
    responses = {
        "json": http.get(url + "/api/tasks"),
        "404": http.get(url + "/api/tasks/" + str(uuid.uuid4())),
        "500": http.get(url + "/api/test-boom"),
        "page": http.get(url + "/"),
        "docs": http.get(url + "/api/docs"),
        "static": http.get(url + "/static/app.css"),
        "metrics": http.get(url + "/metrics"),
    }
    for name, r in responses.items():
        assert r.headers["X-Content-Type-Options"] == "nosniff", name
        assert r.headers["X-Frame-Options"] == "DENY", name
        assert r.headers["Referrer-Policy"] == "no-referrer", name
        assert "Content-Security-Policy" in r.headers, name
    for name in ("page", "docs"):
        csp = responses[name].headers["Content-Security-Policy"]
        assert responses[name].headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp and "*" not in csp
    assert responses["json"].headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert responses["json"].headers["Cache-Control"] == "no-store"  # tenant data is never cached on the way
    key = auth.create_key(service.rt.db, "acme")
    r = http.get(url + "/api/tasks")
    assert r.status_code == 401 and r.headers["X-Content-Type-Options"] == "nosniff"
    assert http.get(url + "/api/tasks", headers=bearer(key)).headers["X-Frame-Options"] == "DENY"


def test_another_tenants_upload_is_not_remembered_for_you(tmp_path, http, http_only):
    app = create_app(make_settings(tmp_path, rate_limit=0))
    rt = app.extensions["docproc"]
    a, b = (bearer(auth.create_key(rt.db, name)) for name in ("side-a", "side-b"))
    url = http_only(app)
    data = page(42)
    sha = rt.store.digest(data)
    assert post_file(http, url, data, a).status_code == 202
    stored = rt.store.path_for(sha).stat()
    assert rt.inspections.get("side-a", sha) is not None and rt.inspections.get("side-b", sha) is None
    assert post_file(http, url, data, b).status_code == 202
    # B's upload went through the same work as a new file: inspected for B, and written again.
    assert rt.inspections.get("side-b", sha) is not None
    assert rt.store.path_for(sha).stat().st_ino != stored.st_ino
    assert rt.store.read(sha) == data
