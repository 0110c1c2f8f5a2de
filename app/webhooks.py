"""Callback URLs: which targets are allowed, and signed delivery with retries from owned threads."""
from __future__ import annotations

import hashlib
import heapq
import hmac
import ipaddress
import itertools
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import requests

from . import jsonio
from .errors import BadInput
from .models import iso, task_to_dict

logger = logging.getLogger(__name__)


def check_callback_url(url, *, allow_private: bool) -> None:
    """Only http(s) URLs; loopback, private, link-local and reserved targets unless allowed."""
    if not isinstance(url, str) or len(url) > 2048:
        raise BadInput(400, "invalid_callback_url", "options.callback_url must be a URL string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(400, "invalid_callback_url", "options.callback_url must be an http or https URL")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise BadInput(400, "invalid_callback_url", f"cannot resolve {parts.hostname!r}") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global:
            raise BadInput(400, "callback_url_not_allowed",
                           "callback targets on private or loopback addresses are refused"
                           " (set DOCPROC_ALLOW_PRIVATE_CALLBACKS=1 to allow them)")


# -- delivery ------------------------------------------------------------------------------
RESUME_WINDOW = 86400.0  # at start, deliveries of tasks that ended this recently are taken up again
USER_AGENT = "docproc-webhook/1"


def callback_url(row) -> str | None:
    """The task's options.callback_url, if it has one."""
    if "callback_url" not in row["input"]:  # most tasks: skip parsing their input on every finish
        return None
    return jsonio.loads(row["input"]).get("options", {}).get("callback_url") or None


def sign(secret: str, body: bytes) -> str:
    """The X-Docproc-Signature value: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    """One POST to make; the body is fixed at the first attempt, so every attempt sends the same bytes."""

    task_id: str
    tenant: str
    url: str
    body: bytes
    attempt: int = 1


class WebhookSender:
    """POSTs final task objects to callback URLs from its own threads; a worker only enqueues."""

    def __init__(self, settings, db, secret_for, *, clock=time.time, threads: int = 2):
        self.settings = settings
        self.db = db
        self.secret_for = secret_for  # tenant -> webhook secret
        self.clock = clock
        self.n_threads = threads
        self._cond = threading.Condition()
        self._heap: list = []  # (due on the monotonic clock, sequence, Delivery)
        self._queued: set[str] = set()  # task ids with a delivery in flight or waiting
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- intake ----------------------------------------------------------------------------
    def on_finished(self, row) -> None:
        """TaskEvents hook: schedule the first attempt when the task asked for a callback."""
        url = callback_url(row)
        if url:
            self._schedule(Delivery(row["id"], row["tenant"], url, self._body(row)), 0.0)

    def _body(self, row) -> bytes:
        return json.dumps(task_to_dict(row), separators=(",", ":")).encode()

    def _schedule(self, delivery: Delivery, delay: float, *, retry: bool = False) -> None:
        with self._cond:
            if not retry:
                if delivery.task_id in self._queued:
                    return
                self._queued.add(delivery.task_id)
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), delivery))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._queued)

    # -- threads ---------------------------------------------------------------------------
    def start(self) -> None:
        """Take up deliveries a previous run left unfinished, then start the sender threads."""
        self._stop.clear()
        since = self.clock() - RESUME_WINDOW
        for row in self.db.webhooks_to_resume(since, self.settings.webhook_attempts):
            logger.info("task %s: resuming its webhook delivery (attempt %d)", row["id"], row["last_attempt"] + 1)
            self._schedule(Delivery(row["id"], row["tenant"], callback_url(row), self._body(row), row["last_attempt"] + 1), 0.0)
        for i in range(self.n_threads):
            t = threading.Thread(target=self._loop, name=f"docproc-webhook-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the attempts in flight; waiting ones stay in the database's view and resume at start."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        self._threads = []
        left = self.pending()
        if left:
            logger.warning("webhooks: %d deliveries unfinished at shutdown; they resume at the next start", left)

    def _next(self) -> Delivery | None:
        with self._cond:
            while not self._stop.is_set():
                if self._heap and self._heap[0][0] <= time.monotonic():
                    return heapq.heappop(self._heap)[2]
                self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
        return None

    def _loop(self) -> None:
        while (delivery := self._next()) is not None:
            try:
                self.attempt(delivery)
            except Exception:  # the sender thread's boundary: one bad delivery must not stop the others
                logger.exception("task %s: webhook attempt %d failed unexpectedly", delivery.task_id, delivery.attempt)
                self._done(delivery)

    def _done(self, delivery: Delivery) -> None:
        with self._cond:
            self._queued.discard(delivery.task_id)

    # -- one attempt -----------------------------------------------------------------------
    def attempt(self, d: Delivery) -> bool:
        """POST once, record the attempt, schedule the next one on failure; True when delivered."""
        status, error, final = None, None, False
        try:
            # Checked again at send time: the name may resolve elsewhere now than at submission.
            check_callback_url(d.url, allow_private=self.settings.allow_private_callbacks)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Docproc-Signature": sign(self.secret_for(d.tenant), d.body),
                "X-Docproc-Task": d.task_id,
                "X-Docproc-Timestamp": str(int(self.clock())),
                "X-Docproc-Attempt": str(d.attempt),
            }
            with requests.post(d.url, data=d.body, headers=headers, timeout=self.settings.webhook_timeout,
                               allow_redirects=False, stream=True) as response:
                status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except BadInput as exc:
            error, final = exc.message, True
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        delivered = error is None
        self.db.record_webhook_attempt(d.task_id, d.url, d.attempt, status, error, delivered, self.clock())
        if delivered:
            logger.info("task %s: webhook delivered (attempt %d, HTTP %s)", d.task_id, d.attempt, status)
        elif final or d.attempt >= self.settings.webhook_attempts:
            logger.error("task %s: webhook not delivered after %d attempts: %s", d.task_id, d.attempt, error)
        else:
            delay = self.settings.webhook_backoff * 2 ** (d.attempt - 1)
            logger.warning("task %s: webhook attempt %d failed (%s); retry in %.1fs", d.task_id, d.attempt, error, delay)
            self._schedule(replace(d, attempt=d.attempt + 1), delay, retry=True)
            return False
        self._done(d)
        return delivered


def delivery_log(db, task_id: str) -> list[dict]:
    """The delivery attempts of a task's callback, as the task object shows them."""
    return [{"attempt": r["attempt"], "status_code": r["status_code"], "error": r["error"],
             "delivered": bool(r["delivered"]), "at": iso(r["at"])} for r in db.webhook_attempts(task_id)]
