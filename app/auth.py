"""Who is asking: the tenant of each request."""
from __future__ import annotations

import logging

from flask import g

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"


def init_app(app) -> None:
    app.before_request(_identify)


def _identify():
    g.tenant = ANONYMOUS


def current_tenant() -> str:
    return g.tenant


def check_startup(settings, db) -> None:
    """Refuse to serve anonymously on a non-loopback address unless told to."""
