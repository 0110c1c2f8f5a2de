"""The HTTP layer under hostile clients: stalled bodies, idle connections, waiting requests, shutdown."""
from __future__ import annotations

import select
import socket
import threading
import time

import pytest
import requests

from app import create_app
from app.auth import create_key
from app.server import Service
from conftest import llm_settings, make_settings
from drawing import draw_page, png_bytes


def page(text: str) -> bytes:
    return png_bytes(draw_page([text, "Total: $3.00"], size=(600, 240)))


def answered_within(sock: socket.socket, seconds: float) -> bytes | None:
    """The first bytes the server sends (b"" when it closed), or None if nothing came in time."""
    poller = select.poll()  # not select(): the idle test opens more than 1024 descriptors
    poller.register(sock, select.POLLIN)
    if not poller.poll(seconds * 1000):
        return None
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def whole_reply(sock: socket.socket, seconds: float = 5) -> bytes:
    """Headers and a Content-Length body, read to the end (they may come in more than one segment)."""
    data = answered_within(sock, seconds) or b""
    while b"\r\n\r\n" in data:
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
        if len(body) >= length:
            break
        more = answered_within(sock, seconds)
        if not more:
            break
        data += more
    return data


def raw(port: int, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head.encode())
    return sock


@pytest.fixture
def quiet_service(tmp_path):
    """A service with no workers (tasks stay pending), 4 HTTP threads, short timeouts; two tenants' keys."""
    app = create_app(make_settings(tmp_path, http_threads=4, http_idle_timeout=1.0, http_body_timeout=2.0))
    db = app.extensions["docproc"].db
    keys = {name: create_key(db, name) for name in ("alpha", "beta", "gamma")}
    service = Service(app).start(workers=False)
    yield service, keys
    service.stop(grace=1)


def health_answers(service) -> bool:
    """Health answers (503 here, as no worker runs: the point is that it answers at all, and at once)."""
    return "workers" in requests.get(service.url + "/api/health", timeout=5).json()


def submit(service, key: str) -> str:
    r = requests.post(service.url + "/api/tasks", headers={"X-API-Key": key}, data={"type": "document"},
                      files=[("file", ("p.png", page("Waiting"), "image/png"))], timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def test_stalled_bodies_hold_no_thread_and_are_cut_at_the_body_deadline(quiet_service):
    service, keys = quiet_service
    head = ("POST /api/tasks HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Length: 5000\r\n"
            "Content-Type: multipart/form-data; boundary=XX\r\n\r\n--XX\r\n")
    stalled = [raw(service.port, head.format(key=keys["alpha"])) for _ in range(16)]  # four times the threads
    try:
        assert health_answers(service)
        assert submit(service, keys["beta"])
        for sock in stalled:  # each is answered 408 (or closed) once its body is overdue, never left open
            reply = answered_within(sock, 10)
            assert reply is not None and (reply == b"" or reply.startswith(b"HTTP/1.1 408")), reply
    finally:
        for sock in stalled:
            sock.close()


def test_idle_connections_do_not_lock_out_new_clients_and_are_closed(quiet_service):
    service, _ = quiet_service
    idle = [socket.create_connection(("127.0.0.1", service.port), timeout=10) for _ in range(1200)]
    try:
        assert health_answers(service)
        deadline = time.monotonic() + 15
        poller = select.poll()
        by_fd = {sock.fileno(): sock for sock in idle}
        for sock in idle:
            poller.register(sock, select.POLLIN)
        while by_fd and time.monotonic() < deadline:  # each is closed by the server after the idle timeout
            for fd, _ in poller.poll(1000):
                assert answered_within(by_fd.pop(fd), 0) == b""
                poller.unregister(fd)
        assert not by_fd, f"{len(by_fd)} idle connections still open"
    finally:
        for sock in idle:
            sock.close()


def long_poll(service, key: str | None, task_id: str, wait: int = 30) -> socket.socket:
    auth = f"X-API-Key: {key}\r\n" if key else ""
    return raw(service.port, f"GET /api/tasks/{task_id}?wait={wait} HTTP/1.1\r\nHost: x\r\n{auth}\r\n")


def test_long_polls_share_one_cap_per_tenant_and_in_all(quiet_service):
    service, keys = quiet_service  # 4 HTTP threads: 2 may wait, 1 per tenant
    tasks = {name: submit(service, key) for name, key in keys.items()}
    held = []
    try:
        first = long_poll(service, keys["alpha"], tasks["alpha"])
        held.append(first)
        assert answered_within(first, 1.5) is None  # waiting
        more = [long_poll(service, keys["alpha"], tasks["alpha"]) for _ in range(6)]  # more than the threads
        held += more
        for sock in more:
            assert answered_within(sock, 5).startswith(b"HTTP/1.1 429"), "over its share: refused at once"
        beta = long_poll(service, keys["beta"], tasks["beta"])
        held.append(beta)
        assert answered_within(beta, 1.5) is None
        stream = raw(service.port, f"GET /api/tasks/{tasks['gamma']}/events HTTP/1.1\r\nHost: x\r\n"
                                   f"X-API-Key: {keys['gamma']}\r\n\r\n")
        held.append(stream)
        reply = whole_reply(stream)
        assert reply.startswith(b"HTTP/1.1 503") and b"too_many_streams" in reply  # the service's share is used
        # Everything else still answers while the waiting share is full.
        assert health_answers(service)
        assert submit(service, keys["gamma"])
        # A client that goes away frees its slot at once, not at its next keep-alive.
        first.close()
        deadline = time.monotonic() + 5
        while True:
            again = long_poll(service, keys["alpha"], tasks["alpha"], wait=1)
            held.append(again)
            reply = answered_within(again, 3)
            if reply is None or reply.startswith(b"HTTP/1.1 200"):
                break
            assert time.monotonic() < deadline, "the closed long-poll's slot did not come back"
            time.sleep(0.1)
    finally:
        for sock in held:
            sock.close()


def test_shutdown_answers_waiters_at_once_not_after_the_drain(tmp_path, fake):
    fake.delay = 4.0  # the task's LLM call keeps the drain busy
    app = create_app(llm_settings(tmp_path, fake, shutdown_grace=10.0))
    service = Service(app).start()
    http = requests.Session()
    task = http.post(service.url + "/api/tasks", data={"type": "document"},
                     files=[("file", ("p.png", page("Draining"), "image/png"))], timeout=10).json()
    deadline = time.monotonic() + 30
    while http.get(f"{service.url}/api/tasks/{task['id']}", timeout=5).json()["stage"] != "extract":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    poll = long_poll(service, None, task["id"], wait=60)
    stream = raw(service.port, f"GET /api/tasks/{task['id']}/events HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answered_within(stream, 2).startswith(b"HTTP/1.1 200")  # its first event
    stopping = threading.Thread(target=service.stop, name="test-stop")
    stopping.start()
    try:
        reply = answered_within(poll, 3)
        assert reply is not None and reply.startswith(b"HTTP/1.1 200") and stopping.is_alive()
        rest = b""
        while b"event: end" not in rest:
            chunk = answered_within(stream, 3)
            assert chunk, rest
            rest += chunk
        assert b'"reason":"shutdown"' in rest and stopping.is_alive()  # answered while the task still drains
    finally:
        stopping.join(30)
        poll.close()
        stream.close()
        http.close()


def test_a_body_over_the_limit_is_answered_413_to_a_client_still_sending_it(tmp_path):
    """The client gets the JSON 413, not a reset: a bounded excess is read and dropped before the answer."""
    app = create_app(make_settings(tmp_path, max_upload_mb=1))
    service = Service(app).start(workers=False)
    try:
        body = b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024)
        with requests.Session() as session:
            for _ in range(50):  # a reset came within tens of tries when the body was left unread
                r = session.post(service.url + "/api/tasks", data={"type": "document"},
                                 files=[("file", ("big.png", body, "image/png"))], timeout=10)
                assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", r.text
        chunked = requests.post(service.url + "/api/tasks", data=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                                headers={"Content-Type": "multipart/form-data; boundary=XX"}, timeout=10)
        assert chunked.status_code == 413
        assert health_answers(service)
    finally:
        service.stop(grace=1)
