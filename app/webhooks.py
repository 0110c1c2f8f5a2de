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

import urllib3

from . import backoff, jsonio
from .errors import BadInput, excerpt
from .models import iso, task_to_dict

logger = logging.getLogger(__name__)


DNS_TIMEOUT = 2.0  # seconds a callback host may take to resolve, at submission and at delivery
MAX_LOOKUPS = 8  # lookups at once; a resolver that hangs holds one of these, never a request thread
MAX_RETRY_DELAY = 600.0  # cap of the delivery backoff
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_lookups = threading.BoundedSemaphore(MAX_LOOKUPS)


@dataclass(frozen=True)
class Target:
    """Where a callback goes: the URL's parts and the one address that was checked (and is connected to)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def _refused(url_problem: str) -> BadInput:
    return BadInput(400, "invalid_callback_url", url_problem)


def parse_callback_url(url) -> Target:
    """The parts of an http(s) URL, or a 400; no lookup yet (address is empty)."""
    if not isinstance(url, str) or len(url) > 2048:
        raise _refused("options.callback_url must be a URL string of at most 2048 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port out of range or not a number, a broken [IPv6] literal
        raise _refused("options.callback_url is not a valid URL (host or port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refused("options.callback_url must be an http or https URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path, "")


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64, IPv4-compatible)."""
    found = []
    if addr.ipv4_mapped is not None:
        found.append(addr.ipv4_mapped)
    if addr.sixtofour is not None:
        found.append(addr.sixtofour)
    if addr.teredo is not None:
        found.extend(addr.teredo)
    if any(addr in net for net in _NAT64) or (addr in _IPV4_COMPATIBLE and int(addr) > 1):
        found.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return found


def is_public(addr) -> bool:
    """Global unicast, and so is every IPv4 address it embeds (Python 3.11 calls 64:ff9b::7f00:1 global)."""
    if addr.is_multicast or not addr.is_global:
        return False
    return addr.version == 4 or all(v4.is_global for v4 in embedded_ipv4(addr))


def _resolve(host: str, port: int, timeout: float) -> list[str]:
    """getaddrinfo on a thread of its own, waited for at most `timeout` (it has no timeout itself)."""
    if not _lookups.acquire(timeout=timeout):
        raise _refused(f"cannot resolve {excerpt(host)}: too many lookups in progress")
    outcome: dict = {}
    done = threading.Event()

    def lookup():
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            outcome["error"] = exc
        finally:
            _lookups.release()
            done.set()

    threading.Thread(target=lookup, name="docproc-dns", daemon=True).start()
    if not done.wait(timeout):
        raise _refused(f"cannot resolve {excerpt(host)} within {timeout:g} s")
    if "error" in outcome or not outcome["infos"]:
        raise _refused(f"cannot resolve {excerpt(host)}")
    return [info[4][0].split("%", 1)[0] for info in outcome["infos"]]


def resolve_callback(url, *, allow_private: bool, timeout: float = DNS_TIMEOUT) -> Target:
    """The URL's target with the address to connect to; 400 when any address of the host is private."""
    target = parse_callback_url(url)
    addresses = [ipaddress.ip_address(a) for a in _resolve(target.host, target.port, timeout)]
    if not allow_private and not all(is_public(a) for a in addresses):
        raise BadInput(400, "callback_url_not_allowed",
                       "callback targets on private, loopback, link-local or reserved addresses are refused"
                       " (set DOCPROC_ALLOW_PRIVATE_CALLBACKS=1 to allow them)")
    return replace(target, address=str(addresses[0]))


def check_callback_url(url, *, allow_private: bool) -> None:
    """At submission: a valid http(s) URL whose host resolves to public addresses only (unless allowed)."""
    if allow_private:
        parse_callback_url(url)
    else:
        resolve_callback(url, allow_private=False)


def post(target: Target, body: bytes, headers: dict, timeout: float) -> int:
    """POST to the checked address (no second lookup, so no DNS rebinding); redirects are not followed."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    default_port = 443 if target.scheme == "https" else 80
    headers = {**headers, "Host": host if target.port == default_port else f"{host}:{target.port}"}
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    if target.scheme == "https":  # TLS still names and verifies the host, not the address
        pool = urllib3.HTTPSConnectionPool(target.address, target.port, timeout=limits, retries=False,
                                           server_hostname=target.host, assert_hostname=target.host)
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=limits, retries=False)
    with pool:
        response = pool.urlopen("POST", target.path, body=body, headers=headers, redirect=False,
                                assert_same_host=False, preload_content=False)
        response.drain_conn()
        return response.status


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
            # Resolved and checked again at send time, and that address is the one connected to.
            target = resolve_callback(d.url, allow_private=self.settings.allow_private_callbacks,
                                      timeout=min(DNS_TIMEOUT, self.settings.webhook_timeout))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Docproc-Signature": sign(self.secret_for(d.tenant), d.body),
                "X-Docproc-Task": d.task_id,
                "X-Docproc-Timestamp": str(int(self.clock())),
                "X-Docproc-Attempt": str(d.attempt),
            }
            status = post(target, d.body, headers, self.settings.webhook_timeout)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except BadInput as exc:
            error, final = exc.message, exc.code == "callback_url_not_allowed"
        except urllib3.exceptions.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        delivered = error is None
        self.db.record_webhook_attempt(d.task_id, d.url, d.attempt, status, error, delivered, self.clock())
        if delivered:
            logger.info("task %s: webhook delivered (attempt %d, HTTP %s)", d.task_id, d.attempt, status)
        elif final or d.attempt >= self.settings.webhook_attempts:
            logger.error("task %s: webhook not delivered after %d attempts: %s", d.task_id, d.attempt, error)
        else:
            delay = backoff.delay(d.attempt, self.settings.webhook_backoff, MAX_RETRY_DELAY)
            logger.warning("task %s: webhook attempt %d failed (%s); retry in %.1fs", d.task_id, d.attempt, error, delay)
            self._schedule(replace(d, attempt=d.attempt + 1), delay, retry=True)
            return False
        self._done(d)
        return delivered


def delivery_log(db, task_id: str) -> list[dict]:
    """The delivery attempts of a task's callback, as the task object shows them."""
    return [{"attempt": r["attempt"], "status_code": r["status_code"], "error": r["error"],
             "delivered": bool(r["delivered"]), "at": iso(r["at"])} for r in db.webhook_attempts(task_id)]
