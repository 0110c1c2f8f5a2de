"""Serving: waitress in a named thread, the worker pool beside it, signals for shutdown."""
from __future__ import annotations

import logging
import os
import signal
import threading

from waitress.server import create_server

from . import create_app
from .config import Settings
from .logs import configure_logging

logger = logging.getLogger(__name__)


class Service:
    """One running instance: the HTTP server thread plus the worker pool, started and stopped together."""

    def __init__(self, app):
        self.app = app
        self.rt = app.extensions["docproc"]
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> "Service":
        from . import auth

        s = self.rt.settings
        auth.check_startup(s, self.rt.db)
        self.rt.pool.start()
        self._server = create_server(self.app, host=s.host, port=s.port, threads=s.http_threads,
                                     ident="docproc", channel_timeout=120, connection_limit=1000,
                                     clear_untrusted_proxy_headers=True)
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
        if self._server is not None:
            self._server.close()
            self._server.task_dispatcher.shutdown(timeout=5)
            self._server = None
        self.rt.db.close_all()
        logger.info("docproc stopped")
        return released


def serve(settings: Settings | None = None) -> int:
    """Run until SIGTERM/SIGINT: the first drains within the grace period, a second exits at once."""
    settings = settings or Settings.from_env()
    configure_logging(settings)
    service = Service(create_app(settings)).start()
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
