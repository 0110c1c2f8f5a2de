"""HTTP: hypercorn's asyncio server in a thread of this process, the WSGI app on a pool of named threads.

Why this shape: the event loop reads each request whole (headers and body) before a Python
thread sees it, so a slow or stalled client holds a socket, never a thread that others need;
an idle connection costs a socket and is closed after `idle_timeout`; a body must arrive within
`body_timeout`. asyncio sets TCP_NODELAY on every connection, so a keep-alive answer is not held
back by Nagle. hypercorn is driven through its public `serve()` with a shutdown trigger.

The WSGI call is ours (an ASGI app below) rather than hypercorn's wrapper: a body over the limit
is then answered by the app's own JSON 413 (at once when Content-Length says so), a whole answer
leaves in one send, and the app can see in `environ["docproc.disconnected"]` that a client left.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

from hypercorn.asyncio import serve
from hypercorn.config import Config

from . import jsonio

logger = logging.getLogger(__name__)

DRAIN_LIMIT = 64 * 1024 * 1024  # bytes of a refused body read and dropped before its 413 ...
DRAIN_PAUSE = 0.25  # ... while no gap between its pieces is longer than this (seconds)

DISCONNECTED = "docproc.disconnected"  # environ key: a threading.Event set when the client has gone


def _environ(scope: dict, body: bytes, length: int | None, disconnected: threading.Event) -> dict:
    server = scope.get("server") or ("localhost", 80)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "REMOTE_ADDR": (scope.get("client") or ("", 0))[0],
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        DISCONNECTED: disconnected,
    }
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        key = name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"
        value = raw_value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)  # a body cut at the limit says how far it went, so the app refuses it
    return environ


class HttpServer:
    """Serves a WSGI app on host:port; bind() takes the address, start() serves, stop() drains and closes."""

    def __init__(self, app, *, host: str, port: int, threads: int, max_body: int, idle_timeout: float = 5.0,
                 body_timeout: float = 60.0, backlog: int = 1024, grace: float = 5.0):
        self.app = app
        self.host, self.requested_port = host, port
        self.threads, self.max_body, self.backlog = threads, max_body, backlog
        self.idle_timeout, self.body_timeout, self.grace = idle_timeout, body_timeout, grace
        self.port: int | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._pool: ThreadPoolExecutor | None = None
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

    def close(self) -> None:
        """Give up a bound address that is not (or no longer) needed here."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def start(self, timeout: float = 10.0) -> "HttpServer":
        """Serve on the bound address (binding first if needed)."""
        if self._socket is None:
            self.bind()
        config = Config()
        # hypercorn owns (and closes) the descriptor it is given: hand it a duplicate and close ours,
        # so that after stop() nothing keeps the port accepting connections.
        config.bind = [f"fd://{os.dup(self._socket.fileno())}"]
        self.close()
        config.backlog = self.backlog
        config.keep_alive_timeout = self.idle_timeout  # also the wait for a new connection's first bytes
        # No read_timeout: it would also cut a long-poll whose client, rightly, sends nothing; bodies have
        # their own deadline below, and headers must be in within keep_alive_timeout.
        config.graceful_timeout = self.grace
        config.h11_max_incomplete_size = 64 * 1024  # request line and headers; 431 beyond
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.include_server_header = False
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="docproc-http")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(config, ready), name="docproc-http-loop", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("the HTTP server did not start")
        if self._error is not None:
            self._thread.join(timeout)
            raise RuntimeError(f"the HTTP server failed to start: {self._error}") from self._error
        return self

    def _serve(self, config: Config, ready: threading.Event) -> None:
        async def main():
            self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await serve(self._asgi, config, shutdown_trigger=self._stopping.wait, mode="asgi")

        try:
            asyncio.run(main())
        except BaseException as exc:  # the loop thread's boundary: say why serving ended
            self._error = exc
            logger.exception("the HTTP server stopped")
        finally:
            ready.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop accepting, close idle connections, let requests in flight finish; True once it ended."""
        if self._thread is None:
            return True
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(self.grace + 2.0 if timeout is None else timeout)
        ended = not self._thread.is_alive()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._thread = None
        return ended

    # -- one request ---------------------------------------------------------------------------
    async def _asgi(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return  # no websockets here: hypercorn closes the connection
        try:
            async with asyncio.timeout(self.body_timeout):
                read = await self._read_body(scope, receive)
        except TimeoutError:
            await _send_json(send, 408, "body_timeout", f"the request body did not arrive within {self.body_timeout:g} s")
            return
        if read is None:
            return  # the client left before its body was in
        body, length, refused_rest = read
        if refused_rest:
            try:
                async with asyncio.timeout(self.body_timeout):
                    if not await _drop_body(receive, DRAIN_LIMIT):
                        return  # the client left
            except TimeoutError:
                pass  # a trickle is answered (413) at the body deadline
        disconnected = threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, disconnected))
        try:
            answer = await self._loop.run_in_executor(self._pool, self._call_app, _environ(scope, body, length, disconnected),
                                                      send, disconnected)
            if answer is not None:  # a whole answer: headers and body leave together
                status, headers, data = answer
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": data})
        finally:
            watcher.cancel()

    async def _read_body(self, scope, receive) -> tuple[bytes, int | None, bool] | None:
        """The body, or as much of it as shows it is over the limit; the length to tell the app if it
        changed; and whether a refused rest is still to come. None when the client went away."""
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return b"", None, True  # refused from the headers by the app; the body is never kept
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body:  # the app sees a declared length over the limit: 413
                return b"".join(chunks), size, bool(message.get("more_body"))
            if not message.get("more_body"):
                break
        return b"".join(chunks), (size if declared is None else None), False

    def _call_app(self, environ: dict, send, disconnected: threading.Event):
        """Run the app on a pool thread: a body of known length comes back whole; a stream is sent as it comes."""
        started = []

        def start_response(status, headers, exc_info=None):
            started[:] = [int(status.split(" ", 1)[0]),
                          [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]]

        body = self.app(environ, start_response)
        try:
            if any(name == b"content-length" for name, _ in started[1]):
                return started[0], started[1], b"".join(body)
            self._send(send, {"type": "http.response.start", "status": started[0], "headers": started[1]})
            for chunk in body:
                if disconnected.is_set():
                    return None  # nobody reads the rest; the app's close() below still runs
                self._send(send, {"type": "http.response.body", "body": chunk, "more_body": True})
            self._send(send, {"type": "http.response.body", "body": b""})
            return None
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def _send(self, send, message: dict) -> None:
        asyncio.run_coroutine_threadsafe(send(message), self._loop).result()


async def _drop_body(receive, limit: int) -> bool:
    """Read and drop the rest of a refused body while it keeps coming (up to `limit` bytes), so that a
    client still sending reads the 413 instead of a reset; one that pauses is answered at once.
    False when the client left."""
    dropped = 0
    while dropped <= limit:
        try:
            async with asyncio.timeout(DRAIN_PAUSE):
                message = await receive()
        except TimeoutError:
            return True
        if message["type"] == "http.disconnect":
            return False
        dropped += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    return True


async def _watch_disconnect(receive, disconnected: threading.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    disconnected.set()


async def _send_json(send, status: int, code: str, message: str) -> None:
    body = jsonio.dumps_bytes({"error": {"code": code, "message": message}})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
