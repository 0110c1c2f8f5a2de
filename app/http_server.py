"""HTTP: granian's Rust HTTP/1.1 server calling the Flask app on its Python threads, in this process.

Why granian: parsing, keep-alive and socket I/O run in Rust without the GIL, so the one core
our Python gets goes to the requests themselves. A cached submission cost ~1.7 ms of service
CPU here against ~4 ms under waitress (bench/RESULTS.md). granian's own launcher forks worker
processes; the service is one process (the queue, the pool and the data dir lock live in it),
so this module runs granian's WSGI worker directly, as granian does for free-threaded builds.
That worker is granian's internal API: pyproject.toml pins the version it was written against.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading

from granian._futures import _new_cbscheduler
from granian._granian import SocketHolder, WorkerSignal, WSGIWorker
from granian.http import HTTP1Settings

_BASE_ENVIRON = {
    "GATEWAY_INTERFACE": "CGI/1.1",
    "SCRIPT_NAME": "",
    "SERVER_SOFTWARE": "docproc",
    "wsgi.errors": sys.stderr,
    "wsgi.input_terminated": True,  # werkzeug then caps a body without Content-Length at MAX_CONTENT_LENGTH
    "wsgi.multiprocess": False,
    "wsgi.multithread": True,
    "wsgi.run_once": False,
    "wsgi.version": (1, 0),
}


class _StartResponse:
    __slots__ = ("status", "headers")

    def __init__(self):
        self.status = 200
        self.headers = []

    def __call__(self, status: str, headers, exc_info=None):
        self.status = int(status.split(" ", 1)[0])
        self.headers = headers


class _Body:
    """A streamed WSGI body for granian: its iterator plus the close() WSGI promises the app."""

    __slots__ = ("_inner", "__next__")

    def __init__(self, inner):
        self._inner = inner
        self.__next__ = iter(inner).__next__

    def close(self):
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def _wsgi_handler(app):
    """granian's call for one request -> the WSGI app; the response goes back through `proto`.

    Ours rather than granian.wsgi's wrapper: that one copies the whole process environment into
    every request's environ, secrets such as OPENAI_API_KEY included, and costs a dict merge more.
    """

    def handle(proto, scope):
        start_response = _StartResponse()
        body = app(_BASE_ENVIRON | scope, start_response)
        if isinstance(body, list):  # Flask's usual answer: one bytes object, sent in one write
            proto.response_bytes(start_response.status, start_response.headers, b"".join(body))
        else:  # a stream (server-sent events): each chunk goes out as it is produced
            proto.response_iter(start_response.status, start_response.headers, _Body(body))
        return start_response.status

    return handle


class HttpServer:
    """Serves a WSGI app on host:port from granian's threads; start() binds, stop() drains and closes."""

    def __init__(self, app, *, host: str, port: int, threads: int, max_connections: int = 1000,
                 idle_timeout: float = 60.0, backlog: int = 1024):
        self.app = app
        self.host, self.requested_port = host, port
        self.threads, self.max_connections, self.backlog = threads, max_connections, backlog
        self.http1 = HTTP1Settings(header_read_timeout=int(idle_timeout * 1000))
        self.port: int | None = None
        self._socket: socket.socket | None = None
        self._signal: WorkerSignal | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def bind(self) -> "HttpServer":
        """Take the address (port 0 = any free port); raises OSError when it is taken. Nothing served yet."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.requested_port))
            sock.listen(self.backlog)  # connections wait in the backlog until start()
        except BaseException:
            sock.close()
            raise
        self._socket, self.port = sock, sock.getsockname()[1]
        return self

    def start(self, timeout: float = 10.0) -> "HttpServer":
        """Serve on the bound address (binding first if needed)."""
        if self._socket is None:
            self.bind()
        # granian owns (and closes) the descriptor it is given: hand it a duplicate, and close ours
        # once it serves, so that after stop() nothing keeps the port accepting connections.
        listener = os.dup(self._socket.fileno())
        self._signal = WorkerSignal()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(listener, ready), name="docproc-http", daemon=True)
        self._thread.start()
        started = ready.wait(timeout)
        self.close()
        if not started:
            raise RuntimeError("the HTTP server did not start")
        if self._error is not None:
            self._thread.join()
            raise RuntimeError(f"the HTTP server failed to start: {self._error}") from self._error
        return self

    def close(self) -> None:
        """Give up a bound address that is not (or no longer) needed here."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _serve(self, listener: int, ready: threading.Event) -> None:
        # granian's API takes an event loop; WSGI calls never run on it, but it must be closed after.
        loop = asyncio.new_event_loop()
        stopped = threading.Event()
        try:
            try:
                worker = WSGIWorker(
                    1, (None, SocketHolder(listener, False, self.backlog)), None,
                    1,  # Rust I/O threads: one is plenty next to a single Python core
                    512,  # Rust blocking pool (file I/O), granian's default
                    self.threads,  # Python threads running the app: long-polls and streams each hold one
                    30,  # seconds an idle Python thread lingers
                    self.max_connections,  # open connections, keep-alive ones included
                    "1", self.http1, None, None,  # HTTP/1.1 only; no static files
                )
                self._signal.add_cb(stopped.set)  # called by granian once it has shut down
                # impl_asyncio: the plain scheduler registers a placeholder asyncio Task that breaks
                # asyncio.all_tasks() for any other loop in the process; WSGI calls never use either.
                worker.serve_mtr(_new_cbscheduler(loop, _wsgi_handler(self.app), impl_asyncio=True), loop, self._signal)
            except BaseException as exc:
                self._error = exc
                os.close(listener)
                return
            finally:
                ready.set()
            stopped.wait()
        finally:
            loop.close()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop accepting, close idle connections, let requests in flight finish; True once it ended."""
        if self._thread is None:
            return True
        self._signal.set()
        self._thread.join(timeout)
        ended = not self._thread.is_alive()
        self._thread = None
        return ended
