"""Who is asking: API keys, the tenant of each request, per-key rate limits, security headers.

Keys look like `dp_<prefix>_<secret>`; only the sha256 of the whole key is stored, next to
the public prefix that names it in listings. Requests send it as `Authorization: Bearer KEY`
or `X-API-Key: KEY`.

With no active key in the database the service is in anonymous mode: requests without a key
are served as tenant "anonymous", but only while bound to a loopback address (or with
DOCPROC_ALLOW_ANONYMOUS=1). Once a key exists, every non-public request needs one.
Public, never tenant-scoped: the page at `/`, `/static/*`, `/api/health`, `/metrics`
(aggregate counts only), `/api/openapi.json` and `/api/docs` with its assets.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import string
import threading
import time

from flask import current_app, g, request

from .config import ConfigError
from .errors import BadInput

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
PUBLIC_ENDPOINTS = frozenset({"static", "web.index", "health.health", "metrics.metrics",
                              "docs.openapi", "docs.docs", "docs.docs_asset"})
KEY_PATTERN = re.compile(r"^dp_([0-9a-f]{8})_([0-9A-Za-z]{32})$")
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ALPHABET = string.ascii_letters + string.digits  # no '_' or '-': a key selects with one double-click
_TOUCH_EVERY = 60.0  # last_used_at is a hint, not an audit log: one write per key per minute at most
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="docproc"'}

# Pages may load only this origin's files; images also from data:/blob: URLs (previews of picked files).
HTML_CSP = ("default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none';"
            " frame-ancestors 'none'; form-action 'self'")
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


# -- keys and tenants (also used by the CLI and the webhook sender) -------------------------------
def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db, tenant: str) -> str:
    """Create a key for tenant and return it; only its hash is kept, so this is the one time it is seen."""
    if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
        raise ValueError("a tenant name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    for _ in range(10):
        prefix = secrets.token_hex(4)
        key = f"dp_{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(32))}"
        if db.insert_api_key(prefix, tenant, hash_key(key), time.time()):
            logger.info("API key %s created for tenant %r", prefix, tenant)
            return key
    raise RuntimeError("could not find a free key prefix")  # 10 collisions in 2**32: the database is odd


def list_keys(db) -> list[dict]:
    """Every key's prefix, tenant and times; never the key or its hash."""
    return [dict(row) for row in db.list_api_keys()]


def revoke_key(db, prefix: str) -> bool:
    """Revoke a key by prefix; it is refused from the next request on. False if no active key has it."""
    revoked = db.revoke_api_key(prefix, time.time())
    if revoked:
        logger.info("API key %s revoked", prefix)
    return revoked


def tenant_secret(db, tenant: str) -> str:
    """The tenant's webhook signing secret, created on first use."""
    return db.tenant_secret(tenant, secrets.token_urlsafe(32), time.time())


# -- rate limits -------------------------------------------------------------------------------------
class RateLimiter:
    """Token buckets per key: `rate` requests per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int, *, clock=time.monotonic):
        self.rate = rate
        self.burst = max(int(burst), 1)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token: 0 when allowed, else the seconds until a token is back."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


# -- requests ---------------------------------------------------------------------------------------
def init_app(app) -> None:
    rt = app.extensions["docproc"]
    settings = rt.settings
    if settings.database_url:  # several API processes may share it: the buckets live in the database
        from .engine.ratelimit import DatabaseRateLimiter

        limiter = DatabaseRateLimiter(rt.db, settings.rate_limit, settings.rate_burst)
    else:
        limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
    app.extensions["docproc_rate_limiter"] = limiter
    app.before_request(_identify)
    app.after_request(_security_headers)


def is_loopback(host: str) -> bool:
    """Whether host names only this machine (an unknown name counts as not loopback)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def anonymous_allowed(settings) -> bool:
    return settings.allow_anonymous or is_loopback(settings.host)


def _presented_key() -> str | None:
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return ""  # some other scheme or an empty token: present but not a key of ours
    value = request.headers.get("X-API-Key")
    return value.strip() if value is not None else None


def _unauthorized(message: str) -> BadInput:
    return BadInput(401, "unauthorized", message, dict(_CHALLENGE))


def _tenant_for(db, key: str) -> tuple[str, str]:
    """(tenant, prefix) of a valid active key, else a 401."""
    match = KEY_PATTERN.match(key)
    row = db.api_key(match.group(1)) if match else None
    # Compare the hashes in constant time even when the prefix is unknown, so timing tells nothing.
    stored = row["key_hash"] if row is not None else "0" * 64
    if not hmac.compare_digest(stored, hash_key(key)) or row is None or row["revoked_at"] is not None:
        raise _unauthorized("the API key is not valid")
    now = time.time()
    if row["last_used_at"] is None or now - row["last_used_at"] > _TOUCH_EVERY:
        db.touch_api_key(row["prefix"], now)
    return row["tenant"], row["prefix"]


def _identify():
    """Set g.tenant from the request's key (or anonymous mode); refuse with 401 or 429."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None  # no tenant: a public view that asked for one would fail, never see another's data
    rt = current_app.extensions["docproc"]
    key = _presented_key()
    if key is None:
        if rt.db.has_active_api_keys() or not anonymous_allowed(rt.settings):
            raise _unauthorized("an API key is required: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
        g.tenant = ANONYMOUS
        return None
    tenant, prefix = _tenant_for(rt.db, key)
    wait = current_app.extensions["docproc_rate_limiter"].take(prefix)
    if wait:
        raise BadInput(429, "rate_limited", "too many requests for this API key; slow down",
                       {"Retry-After": str(max(1, math.ceil(wait)))})
    g.tenant = tenant
    return None


def current_tenant() -> str:
    """The tenant of this request; raises outside an authenticated request, never guesses."""
    tenant = g.get("tenant")
    if tenant is None:
        raise RuntimeError("no tenant for this request")
    return tenant


def _security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if "Content-Security-Policy" not in response.headers:
        response.headers["Content-Security-Policy"] = HTML_CSP if response.mimetype == "text/html" else OTHER_CSP
    if g.get("tenant") is not None:  # a tenant's data: no proxy or browser cache keeps a copy
        response.headers.setdefault("Cache-Control", "no-store")
    return response


# -- start-up -----------------------------------------------------------------------------------------
def check_startup(settings, db) -> None:
    """Say how requests are authenticated; refuse to serve anonymously on a non-loopback address unless told to."""
    if db.has_active_api_keys():
        logger.info("API keys are active: every /api request needs one")
        return
    if is_loopback(settings.host):
        logger.warning("no API key exists: serving anonymous requests because the service is bound to loopback "
                       "address %s; create one with 'docproc keys create TENANT'", settings.host)
        return
    if settings.allow_anonymous:
        logger.warning("no API key exists: serving anonymous requests on %s because DOCPROC_ALLOW_ANONYMOUS=1; "
                       "anyone who can reach this address can use the service", settings.host)
        return
    raise ConfigError(f"refusing to start: no API key exists and DOCPROC_HOST={settings.host} is not a loopback "
                      "address; create a key with 'docproc keys create TENANT' or set DOCPROC_ALLOW_ANONYMOUS=1")
