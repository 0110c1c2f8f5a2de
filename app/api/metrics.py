"""GET /metrics: the Prometheus exposition of this instance."""
from __future__ import annotations

from flask import Blueprint, Response, request

from . import runtime

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    body, content_type = runtime().metrics.render(request.headers.get("Accept"))
    return Response(body, content_type=content_type)
