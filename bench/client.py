"""The benchmark's HTTP clients: submit, long-poll until finished, many at once."""
from __future__ import annotations

import base64
import http.client
import json
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import requests

FINISHED = ("completed", "failed", "cancelled")
_local = threading.local()
_sessions: list = []  # requests.Session and http.client.HTTPConnection objects
_sessions_lock = threading.Lock()


def session() -> requests.Session:
    """One keep-alive session per client thread."""
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
        with _sessions_lock:
            _sessions.append(s)
    return s


def close_sessions() -> None:
    """Close every client thread's connections (the threads may be gone already)."""
    with _sessions_lock:
        sessions, _sessions[:] = list(_sessions), []
    for s in sessions:  # requests sessions and http.client connections alike
        s.close()
    _local.__dict__.clear()


def ts(iso: str | None) -> float | None:
    """The API's ISO 8601 time back to Unix seconds."""
    return None if iso is None else datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass
class Outcome:
    """One task as one client saw it; times are Unix seconds on this machine's clock."""

    id: str
    submitted: float  # just before the POST
    accepted: float  # the 202 arrived
    done: float  # the client saw a finished status
    task: dict

    @property
    def submit_latency(self) -> float:
        return self.accepted - self.submitted

    @property
    def turnaround(self) -> float:
        return self.done - self.submitted

    @property
    def created(self) -> float:
        return ts(self.task["created_at"])

    @property
    def started(self) -> float | None:
        return ts(self.task["started_at"])

    @property
    def completed(self) -> float | None:
        return ts(self.task["completed_at"])


def multipart_body(fields: dict[str, str], filename: str, data: bytes, media_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body with the fields and one file; (body, Content-Type)."""
    boundary = uuid.uuid4().hex
    out = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                   for k, v in fields.items())
    out += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {media_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def call(url: str, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> tuple[int, bytes]:
    """One request over this thread's keep-alive http.client connection: a client that costs little
    CPU, so the service, not the benchmark, has the cores (requests costs ~3x more per call)."""
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        return _send(_connection(url), method, path, body, headers)
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        # A kept-alive connection the server had closed: once more on a new one.
        _local.conn.close()
        _local.conn = None
        return _send(_connection(url), method, path, body, headers)


def _connection(url: str) -> http.client.HTTPConnection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        parts = urlsplit(url)
        conn = _local.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        with _sessions_lock:
            _sessions.append(conn)
    return conn


def _send(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()


def submit(url: str, data: bytes, *, filename: str = "page.png", media_type: str = "image/png",
           task_type: str = "document", options: str = '{"no_cache": true}', priority: int = 5) -> tuple[dict, float, float]:
    """POST one file; (task, time before, time after)."""
    body, content_type = multipart_body({"type": task_type, "options": options, "priority": str(priority)},
                                        filename, data, media_type)
    before = time.time()
    status, answer = call(url, "POST", "/api/tasks", body, content_type)
    after = time.time()
    if status != 202:
        raise RuntimeError(f"submit answered {status}: {answer[:300]!r}")
    return json.loads(answer), before, after


def submit_json(url: str, data: bytes, *, task_type: str = "document", options: dict | None = None) -> tuple[dict, float, float]:
    """POST one file as application/json with the image in base64; (task, time before, time after)."""
    body = {"type": task_type, "images": [base64.b64encode(data).decode()], "options": options or {}}
    before = time.time()
    r = session().post(url + "/api/tasks", json=body, timeout=60)
    after = time.time()
    if r.status_code != 202:
        raise RuntimeError(f"JSON submit answered {r.status_code}: {r.text[:300]}")
    return r.json(), before, after


def run_batch(url: str, blobs: list[bytes], *, task_type: str = "document", options: str = "{}") -> list[dict]:
    """POST every file in one /api/batches request (one task each), then read the batch until done."""
    files = [("file", (f"page-{n}.png", b, "image/png")) for n, b in enumerate(blobs)]
    r = session().post(url + "/api/batches", data={"type": task_type, "options": options}, files=files, timeout=60)
    if r.status_code != 202:
        raise RuntimeError(f"batch submit answered {r.status_code}: {r.text[:300]}")
    batch_id = r.json()["id"]
    end = time.monotonic() + 600
    while True:
        r = session().get(f"{url}/api/batches/{batch_id}", timeout=60)
        r.raise_for_status()
        batch = r.json()
        if batch["done"]:
            return batch["tasks"]
        if time.monotonic() > end:
            raise RuntimeError(f"batch {batch_id} not done after 600 s")
        time.sleep(0.01)  # bounded; cached batches are done on the first read


def wait(url: str, task: dict, *, until=FINISHED, timeout: float = 600.0) -> dict:
    """Long-poll the task until its status is one of `until` or finished (bounded)."""
    end = time.monotonic() + timeout
    while task["status"] not in until and task["status"] not in FINISHED:
        if time.monotonic() > end:
            raise RuntimeError(f"task {task['id']} not finished after {timeout}s: {task['status']}")
        r = session().get(f"{url}/api/tasks/{task['id']}", params={"wait": 30}, timeout=60)
        if r.status_code in (429, 503) and "Retry-After" in r.headers:
            # Over the long-poll cap: poll instead, as the error says (a plain GET is never capped).
            time.sleep(0.5)
            r = session().get(f"{url}/api/tasks/{task['id']}", timeout=60)
        r.raise_for_status()
        task = r.json()
    return task


def run_one(url: str, data: bytes, *, as_json: bool = False, **kwargs) -> Outcome:
    """Submit one file (multipart, or JSON with base64) and follow it to the end, like a client would."""
    task, before, after = submit_json(url, data, **kwargs) if as_json else submit(url, data, **kwargs)
    task = wait(url, task)
    if task["status"] != "completed":
        raise RuntimeError(f"task {task['id']} {task['status']}: {task['errors']}")
    return Outcome(task["id"], before, after, time.time(), task)


def closed_loop(url: str, blobs: list[bytes], clients: int, **kwargs) -> list[Outcome]:
    """`clients` threads, each submitting the next file as soon as its previous task finished."""
    with ThreadPoolExecutor(clients, thread_name_prefix="bench-client") as ex:
        return list(ex.map(lambda b: run_one(url, b, **kwargs), blobs))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in 0..100."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]
