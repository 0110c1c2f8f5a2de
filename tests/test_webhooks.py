"""Webhooks: signed POSTs of the final task to a receiver on 127.0.0.1, retries, records, refusals, resume."""
from __future__ import annotations

import hashlib
import hmac
import io
import ipaddress
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app import create_app
from app.auth import tenant_secret
from app.errors import BadInput
from app import backoff
from app.webhooks import Target, is_public, parse_callback_url, post, resolve_callback, sign
from conftest import make_settings, wait_for
from drawing import draw_page, png_bytes


class Receiver:
    """An HTTP server that records every POST and answers with scripted statuses (then 200)."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        self.lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append({"headers": dict(self.headers), "body": body})
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.lock.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="webhook-receiver", daemon=True)
        self.thread.start()

    def wait_for(self, n: int, timeout: float = 20.0) -> list[dict]:
        end = time.monotonic() + timeout
        with self.lock:
            while len(self.requests) < n and time.monotonic() < end:
                self.lock.wait(end - time.monotonic())
            assert len(self.requests) >= n, f"received {len(self.requests)} of {n} webhook posts"
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def page(text: str) -> bytes:
    return png_bytes(draw_page([text, "Total: $5.00"], size=(700, 300)))


def hook_settings(tmp_path, **kw):
    return make_settings(tmp_path, allow_private_callbacks=True, webhook_backoff=0.05, webhook_attempts=3, **kw)


def test_signed_delivery_after_a_retry_is_recorded(tmp_path, receiver, start_service, http):
    receiver.statuses = [500]
    app = create_app(hook_settings(tmp_path))
    service = start_service(app)
    r = http.post(f"{service.url}/api/tasks", data={"type": "document", "options": json.dumps({"callback_url": receiver.url})},
                  files={"file": ("p.png", page("Webhook receipt"), "image/png")}, timeout=30)
    assert r.status_code == 202, r.text
    task = wait_for(http, service.url + r.headers["Location"])
    assert task["status"] == "completed"
    first, second = receiver.wait_for(2)
    assert first["body"] == second["body"]  # the same final object on every attempt

    secret = tenant_secret(app.extensions["docproc"].db, "anonymous")
    expected = "sha256=" + hmac.new(secret.encode(), second["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(second["headers"]["X-Docproc-Signature"], expected)
    assert second["headers"]["X-Docproc-Task"] == task["id"]
    assert second["headers"]["Content-Type"] == "application/json"
    assert int(second["headers"]["X-Docproc-Timestamp"]) > 1_600_000_000
    assert [first["headers"]["X-Docproc-Attempt"], second["headers"]["X-Docproc-Attempt"]] == ["1", "2"]
    posted = json.loads(second["body"])
    assert posted["id"] == task["id"] and posted["status"] == "completed" and posted["result"]["text"]

    # Each attempt is in the task object (and in webhook_deliveries), once the sender recorded the last one.
    end = time.monotonic() + 10
    while len(attempts := http.get(service.url + r.headers["Location"], timeout=30).json()["webhooks"]) < 2:
        assert time.monotonic() < end, attempts
        time.sleep(0.05)
    assert [(a["attempt"], a["status_code"], a["delivered"]) for a in attempts] == [(1, 500, False), (2, 200, True)]
    assert attempts[0]["error"] == "HTTP 500" and attempts[1]["error"] is None
    # Nothing else is attempted after success.
    assert app.extensions["docproc"].webhooks.pending() == 0
    assert posted == {k: v for k, v in task.items() if k != "webhooks"}  # the object GET returns


def test_gives_up_after_the_configured_attempts(tmp_path, receiver, start_service, http):
    receiver.statuses = [503, 503, 503, 503]
    app = create_app(hook_settings(tmp_path))
    service = start_service(app)
    r = http.post(f"{service.url}/api/tasks", data={"type": "document", "options": json.dumps({"callback_url": receiver.url})},
                  files={"file": ("p.png", page("Never delivered"), "image/png")}, timeout=30)
    wait_for(http, service.url + r.headers["Location"])
    receiver.wait_for(3)
    rt = app.extensions["docproc"]
    end = time.monotonic() + 10
    while rt.webhooks.pending():
        assert time.monotonic() < end
        time.sleep(0.05)
    rows = rt.db.webhook_attempts(r.json()["id"])
    assert [(row["attempt"], row["status_code"], row["delivered"]) for row in rows] == [(1, 503, 0), (2, 503, 0), (3, 503, 0)]
    assert len(receiver.requests) == 3


def test_private_targets_and_other_schemes_are_refused_at_submission(client):
    png = page("Refused")
    for url, code in (("http://127.0.0.1:9/hook", "callback_url_not_allowed"),
                      ("http://localhost/hook", "callback_url_not_allowed"),
                      ("http://10.1.2.3/hook", "callback_url_not_allowed"),
                      ("ftp://example.com/hook", "invalid_callback_url"),
                      ("not a url", "invalid_callback_url")):
        r = client.post("/api/tasks", data={"type": "document", "options": json.dumps({"callback_url": url}),
                                            "file": (io.BytesIO(png), "p.png")}, content_type="multipart/form-data")
        assert r.status_code == 400, (url, r.get_json())
        assert r.get_json()["error"]["code"] == code, url


def test_delivery_left_at_shutdown_resumes_at_the_next_start(tmp_path, receiver, start_service, http):
    settings = hook_settings(tmp_path)
    first = create_app(settings)
    client = first.test_client()
    # No service runs: the task is cancelled while pending, and its webhook cannot be sent yet.
    task = client.post("/api/tasks", data={"type": "document", "options": json.dumps({"callback_url": receiver.url}),
                                           "file": (io.BytesIO(page("Resumed")), "p.png")},
                       content_type="multipart/form-data").get_json()
    assert client.delete(f"/api/tasks/{task['id']}").status_code == 200
    first.extensions["docproc"].db.close_all()

    second = create_app(settings)
    start_service(second)
    (delivered,) = receiver.wait_for(1)
    assert json.loads(delivered["body"])["status"] == "cancelled"
    assert delivered["headers"]["X-Docproc-Task"] == task["id"]


def test_signature_is_hmac_sha256_of_the_raw_body():
    body = b'{"id":"x"}'
    assert sign("secret", body) == "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()


def test_delivery_connects_to_the_checked_address_not_a_second_lookup(receiver):
    # The host name resolves nowhere; the POST still reaches the address that was checked, named in Host.
    port = receiver.server.server_address[1]
    target = Target("http", "rebound.invalid", port, "/hook?x=1", "127.0.0.1")
    assert post(target, b"{}", {"Content-Type": "application/json"}, timeout=5) == 200
    (seen,) = receiver.wait_for(1)
    assert seen["headers"]["Host"] == f"rebound.invalid:{port}"


def test_redirects_are_not_followed(receiver):
    receiver.statuses = [302]
    port = receiver.server.server_address[1]
    assert post(Target("http", "127.0.0.1", port, "/hook", "127.0.0.1"), b"{}", {}, timeout=5) == 302
    assert len(receiver.wait_for(1)) == 1


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True), ("64:ff9b::808:808", True),
    ("64:ff9b::a9fe:a9fe", False), ("64:ff9b:1::a00:1", False), ("::7f00:1", False), ("::ffff:127.0.0.1", False),
    ("2002:7f00:1::", False), ("2002:a00:1::", False), ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
    ("169.254.169.254", False), ("fe80::1", False), ("ff0e::1", False), ("::", False), ("::1", False)])
def test_embedded_ipv4_forms_follow_the_address_they_carry(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


def test_urls_python_cannot_split_are_400s_not_500s():
    for url in ("http://127.0.0.1:99999/", "http://[::1/", "http://127.0.0.1:abc/", "http://[64:ff9b::1/"):
        with pytest.raises(BadInput) as caught:
            parse_callback_url(url)
        assert caught.value.code == "invalid_callback_url"
    assert resolve_callback("http://[::1]:8080/x", allow_private=True).address == "::1"


def test_backoff_is_exponential_with_jitter_capped_and_honours_retry_after():
    delays = [backoff.delay(3, 0.5, 600.0) for _ in range(200)]
    assert all(1.0 <= d <= 2.0 for d in delays) and len(set(delays)) > 100
    assert all(backoff.delay(30, 0.5, 10.0) <= 10.0 for _ in range(50))
    assert backoff.delay(1, 0.5, 600.0, retry_after=30) == 30
