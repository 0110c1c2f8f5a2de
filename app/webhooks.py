"""Callback URLs: which targets are allowed (delivery lives here too)."""
from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urlsplit

from .errors import BadInput

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
