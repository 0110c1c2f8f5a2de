"""Serving: the HTTP server and the worker pool started and stopped together, signals for shutdown."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import threading

from . import create_app
from .config import ConfigError, Settings
from .http_server import HttpServer
from .logs import configure_logging
from .workers import DataDirBusy

logger = logging.getLogger(__name__)


class Service:
    """One running instance: the HTTP server plus the worker pool, started and stopped together."""

    def __init__(self, app):
        self.app = app
        self.rt = app.extensions["docproc"]
        self._http: HttpServer | None = None

    def start(self, *, workers: bool = True) -> "Service":
        """Serve HTTP; workers=False leaves the pool stopped, so tasks stay pending (tests use it)."""
        from . import auth

        s = self.rt.settings
        auth.check_startup(s, self.rt.db)
        http = HttpServer(self.app, host=s.host, port=s.port, threads=s.http_threads, max_body=s.max_upload_bytes,
                          idle_timeout=s.http_idle_timeout, body_timeout=s.http_body_timeout).bind()
        try:
            if workers:
                self.rt.pool.start()
        except BaseException:
            http.close()  # bound but never served: free the port for the caller's retry
            raise
        try:
            self._http = http.start()
        except BaseException:
            self.rt.pool.stop(0)
            raise
        logger.info("docproc listening on %s (data in %s, extractor %s)", self.url, s.data_dir, self.rt.extractor.name)
        return self

    @property
    def host(self) -> str:
        return self.rt.settings.host

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, grace: float | None = None) -> list[str]:
        """Stop taking work, let running tasks finish within grace, then close the server."""
        self.app.extensions["docproc_waiters"].close()  # long-polls and event streams answer now, not after the drain
        released = self.rt.pool.stop(grace)
        self.rt.events.close()
        if self._http is not None:
            http, self._http = self._http, None
            if not http.stop():
                logger.warning("HTTP requests still running after 5 s; leaving them behind")
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
            kill_runs = service.rt.ocr_pool.kill_running  # no tesseract may outlive the service
            halt = getattr(service.rt.ocr_engine, "halt", None)
            if halt is not None:
                halt(kill_runs)  # no new run starts, the running ones die, then their files go
            else:
                kill_runs()
            os._exit(1)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # A timed wait, not stop.wait(): the kernel may hand the signal to any thread, and a main thread
    # blocked on a lock is then never woken to run the Python handler (the service ignored SIGTERM).
    while not stop.wait(0.2):
        pass
    logger.info("signal %s: draining (grace %.0fs)", received[0], settings.shutdown_grace)
    service.stop()
    return 0
