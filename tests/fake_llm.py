"""A small OpenAI-compatible chat server on 127.0.0.1 with scripted behaviours."""
from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.extract.base import LibraryEntry
from app.extract.fields import parse_fields
from app.extract.local import LocalExtractor

KINDS = {"document_extraction": "document", "form_extraction": "form", "form_fill": "fill"}
_BLOCK = re.compile(r"<<<(\w+)\n(.*?)\n\1>>>", re.S)
_PAGE_MARK = re.compile(r"^--- page \d+ ---$", re.M)


class FakeLLM:
    """Serve /v1/chat/completions and /v1/models; answer from the script, else with a valid reply.

    Behaviours: ("json", obj), ("text", str), ("status", code) or ("status", code, headers),
    ("delay", seconds, behaviour), ("reject_schema",) = 400 if the request asks for json_schema.
    """

    def __init__(self, *, delay: float = 0.0, reject_schema: bool = False, model: str = "fake-model"):
        self.delay = delay  # seconds before every answer (benchmarks use it)
        self.reject_schema = reject_schema  # refuse json_schema on every request, not just scripted ones
        self.model = model
        self.requests: list[dict] = []  # parsed bodies of the chat requests, in arrival order
        self.responses: list[tuple[int, dict]] = []  # (status, JSON body) sent back, in order
        self._script: deque = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._handlers: set[threading.Thread] = set()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm", daemon=True)
        self._thread.start()

    def script(self, behaviours: list[tuple]) -> None:
        """Queue behaviours for the next requests, one each."""
        with self._lock:
            self._script.extend(behaviours)

    @property
    def pending(self) -> int:
        """Scripted behaviours not used yet."""
        with self._lock:
            return len(self._script)

    def close(self) -> None:
        """Stop serving, wake delayed answers and wait for every handler thread."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        with self._lock:
            handlers = list(self._handlers)
        for t in handlers:
            t.join(5)

    def __enter__(self) -> "FakeLLM":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _next(self, body: dict) -> tuple:
        with self._lock:
            self.requests.append(body)
            behaviour = self._script.popleft() if self._script else ("default",)
        if self.reject_schema and behaviour[0] == "default":
            behaviour = ("reject_schema",)
        return behaviour

    def answer(self, body: dict, behaviour: tuple) -> tuple[int, dict, dict]:
        """(status, headers, JSON body) for one request."""
        if self.delay:
            self._closing.wait(self.delay)
        while behaviour[0] == "delay":
            self._closing.wait(behaviour[1])
            behaviour = behaviour[2]
        name = behaviour[0]
        if name == "reject_schema":
            if (body.get("response_format") or {}).get("type") == "json_schema":
                return _error(400, "Invalid parameter: response_format of type 'json_schema' is not supported "
                                   "by this model.", "invalid_request_error")
            name, behaviour = "default", ("default",)
        if name == "status":
            headers = behaviour[2] if len(behaviour) > 2 else {}
            status, _, payload = _error(behaviour[1], f"fake error {behaviour[1]}", "fake_error")
            return status, headers, payload
        if name == "json":
            return 200, {}, self._completion(body, json.dumps(behaviour[1]))
        if name == "text":
            return 200, {}, self._completion(body, behaviour[1])
        if name == "default":
            return 200, {}, self._completion(body, json.dumps(valid_reply(body)))
        raise ValueError(f"unknown behaviour {behaviour!r}")

    def _completion(self, body: dict, content: str) -> dict:
        prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4 + 1
        completion = len(content) // 4 + 1
        return {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }


def request_kind(body: dict) -> str:
    """"document", "form" or "fill": from the json_schema name, else from the system prompt."""
    schema = (body.get("response_format") or {}).get("json_schema") or {}
    if schema.get("name") in KINDS:
        return KINDS[schema["name"]]
    system = " ".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "system")
    for name, kind in KINDS.items():
        if f'"{name}"' in system:
            return kind
    return "document"


def request_blocks(body: dict) -> dict[str, str]:
    """The delimited data blocks of the first user message, by name."""
    user = next((str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user"), "")
    return {m.group(1): m.group(2) for m in _BLOCK.finditer(user)}


def valid_reply(body: dict) -> dict:
    """A reply that passes the schema the request asks for, computed by the local extractor."""
    kind, blocks = request_kind(body), request_blocks(body)
    local = LocalExtractor()
    if kind == "fill":
        try:
            fields = json.loads(blocks.get("FORM_FIELDS", "[]"))
            library = [LibraryEntry(kv=e["kv"], source_type=e["source"]["type"], source_id=e["source"]["id"])
                       for e in json.loads(blocks.get("LIBRARY", "[]"))]
        except (ValueError, KeyError, TypeError):
            fields, library = [], []
        return local.fill(fields, blocks.get("FORM_TEXT", ""), library).data
    pages = [p.strip() for p in _PAGE_MARK.split(blocks.get("DOCUMENT_TEXT", "")) if p.strip()]
    try:
        specs = parse_fields(json.loads(blocks["FIELDS"])) if "FIELDS" in blocks else None
    except ValueError:
        specs = None
    data = local.extract(kind, pages or [""], fields=specs).data
    data.pop("provenance", None)  # a model answers values only; the extractor finds where they are
    if specs:
        answers = {}
        for name, answer in data["fields_requested"].items():
            answers[name] = answer["value"]
            if answer.get("currency"):
                answers[f"{name}__currency"] = answer["currency"]
        data["fields_requested"] = answers
    return data


def _error(status: int, message: str, kind: str) -> tuple[int, dict, dict]:
    return status, {}, {"error": {"message": message, "type": kind, "param": None, "code": None}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # benchmarks open many connections at once
    fake: FakeLLM

    def process_request(self, request, client_address):
        # Like ThreadingMixIn, but keeping every handler thread so close() can join it.
        t = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                             name="fake-llm-handler", daemon=True)
        with self.fake._lock:
            self.fake._handlers = {h for h in self.fake._handlers if h.is_alive()}
            self.fake._handlers.add(t)
        t.start()

    def handle_error(self, request, client_address):
        pass  # a client that gave up (timeout tests) is expected, not worth a traceback


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no handler waits on an idle keep-alive socket.
    protocol_version = "HTTP/1.0"
    timeout = 10

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {}, {"object": "list", "data": [
                {"id": self.server.fake.model, "object": "model", "created": 0, "owned_by": "fake"}]})
        else:
            self._send(*_error(404, f"no route {self.path}", "not_found"))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(*_error(404, f"no route {self.path}", "not_found"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(*_error(400, "body is not JSON", "invalid_request_error"))
            return
        fake = self.server.fake
        status, headers, payload = fake.answer(body, fake._next(body))
        with fake._lock:
            fake.responses.append((status, payload))
        self._send(status, headers, payload)

    def _send(self, status: int, headers: dict, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, str(value))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left
