"""Serving: waitress in a named thread, the worker pool beside it, signals for shutdown."""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import signal
import threading

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

from . import create_app
from .config import ConfigError, Settings
from .logs import configure_logging
from .workers import DataDirBusy

logger = logging.getLogger(__name__)

_WAITRESS_CODES = {400: "bad_request", 413: "payload_too_large", 431: "headers_too_large", 501: "not_implemented"}


class _JsonErrorTask(ErrorTask):
    """waitress's own refusals (a body over the limit, broken framing) in the API's JSON error shape."""

    def execute(self):
        error = self.request.error
        message = ("the request body is larger than DOCPROC_MAX_UPLOAD_MB allows" if error.code == 413
                   else f"{error.reason}: {error.body}")
        body = json.dumps({"error": {"code": _WAITRESS_CODES.get(error.code, "http_error"), "message": message}})
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body.encode())
        self.write(body.encode())


class _JsonErrorChannel(HTTPChannel):
    error_task_class = _JsonErrorTask


class Service:
    """One running instance: the HTTP server thread plus the worker pool, started and stopped together."""

    def __init__(self, app):
        self.app = app
        self.rt = app.extensions["docproc"]
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self, *, workers: bool = True) -> "Service":
        """Serve HTTP; workers=False leaves the pool stopped, so tasks stay pending (tests use it)."""
        from . import auth

        s = self.rt.settings
        auth.check_startup(s, self.rt.db)
        self._server = create_server(self.app, host=s.host, port=s.port, threads=s.http_threads,
                                     ident="docproc", channel_timeout=120, connection_limit=1000,
                                     clear_untrusted_proxy_headers=True,
                                     # waitress buffers a whole body before Flask sees it: refuse too-large ones on the headers
                                     max_request_body_size=s.max_upload_bytes + 1)
        if workers:
            try:
                self.rt.pool.start()
            except BaseException:
                self._server.close()  # bound but never served: free the port for the caller's retry
                raise
        self._server.channel_class = _JsonErrorChannel  # every error a client sees has the same shape
        self._thread = threading.Thread(target=self._server.run, name="docproc-http", daemon=True)
        self._thread.start()
        logger.info("docproc listening on http://%s:%s (data in %s, extractor %s)",
                    self.host, self.port, s.data_dir, self.rt.extractor.name)
        return self

    @property
    def host(self) -> str:
        return self._server.effective_host

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, grace: float | None = None) -> list[str]:
        """Stop taking work, let running tasks finish within grace, then close the server."""
        released = self.rt.pool.stop(grace)
        self.rt.events.close()  # long-polls and event streams answer now, freeing their HTTP threads
        if self._server is not None:
            server, self._server = self._server, None
            # Close the sockets from the loop's own thread: closed under its select(), it dies of EBADF.
            try:
                server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
                self._thread.join(5)
            except OSError:
                # The loop's wake-up pipe is gone (waitress closes it on a pipe error): empty the map so
                # the loop ends by itself within its 1 s poll, then close the sockets it no longer watches.
                channels = list(server._map.values())
                server._map.clear()
                self._thread.join(5)
                for channel in channels:
                    try:
                        channel.close()
                    except OSError:
                        pass
            server.task_dispatcher.shutdown(timeout=5)
        close_extractor = getattr(self.rt.extractor, "close", None)
        if close_extractor is not None:
            close_extractor()  # the LLM client's connection pool
        self.rt.db.close_all()
        logger.info("docproc stopped")
        return released


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's per-thread malloc arenas: with ~30 threads they cost ~30% more RSS for nothing."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX; must run before the threads start
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def serve(settings: Settings | None = None) -> int:
    """Run until SIGTERM/SIGINT: the first drains within the grace period, a second exits at once."""
    _limit_malloc_arenas()
    try:
        settings = settings or Settings.from_env()
        configure_logging(settings)
        service = Service(create_app(settings)).start()
    except (ConfigError, DataDirBusy, OSError) as exc:
        # A setting, a second instance or a taken port: one clear line, not a traceback.
        os.write(2, f"docproc: cannot start: {exc}\n".encode())
        return 2
    stop = threading.Event()
    received = []

    def on_signal(signum, _frame):
        received.append(signum)
        if len(received) > 1:
            os.write(2, b"docproc: second signal, exiting now\n")
            os._exit(1)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    logger.info("signal %s: draining (grace %.0fs)", received[0], settings.shutdown_grace)
    service.stop()
    return 0
