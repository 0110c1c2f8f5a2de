"""Every error leaves as {"error": {"code", "message"}}; nothing internal leaks out."""
from __future__ import annotations

import logging
import uuid

from flask import jsonify
from werkzeug.exceptions import HTTPException

from ..errors import BadInput, StorageBusy, StorageFull
from ..storage import is_disk_full

logger = logging.getLogger(__name__)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
               429: "rate_limited", 503: "unavailable", 507: "insufficient_storage"}


def error_response(status: int, code: str, message: str, headers: dict | None = None, **extra):
    body = {"error": {"code": code, "message": message, **extra}}
    response = jsonify(body)
    response.status_code = status
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def init_app(app) -> None:
    @app.errorhandler(BadInput)
    def bad_input(exc: BadInput):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = _HTTP_CODES.get(exc.code, "http_error")
        message = exc.description or exc.name
        if exc.code == 413:
            message = "the request body is larger than DOCPROC_MAX_UPLOAD_MB allows"
        # Only Allow: werkzeug's own headers include Content-Type text/html, wrong for this JSON body.
        methods = getattr(exc, "valid_methods", None)
        return error_response(exc.code, code, message, {"Allow": ", ".join(methods)} if methods else None)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, StorageBusy):  # another process holds the database past the busy timeout
            logger.warning("refused a request: %s", exc.message)
            return error_response(503, "storage_busy", "the database is busy; try again shortly", {"Retry-After": "5"})
        if isinstance(exc, StorageFull) or is_disk_full(exc):  # whatever was being written rolled back
            logger.error("refused a request: the disk is full (%s)", exc)
            return error_response(507, "insufficient_storage", "the service has no room to store this now; "
                                  "try again later", {"Retry-After": "60"})
        error_id = uuid.uuid4().hex[:12]
        logger.exception("unexpected error %s", error_id)
        return error_response(500, "internal_error", f"unexpected error; reference {error_id}", error_id=error_id)
