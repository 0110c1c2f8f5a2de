"""The web page at `/`: static HTML, JS and CSS, no build step (auth adds the CSP and security headers)."""
from __future__ import annotations

from flask import Blueprint, current_app

bp = Blueprint("web", __name__)


@bp.get("/")
def index():
    response = current_app.send_static_file("index.html")
    response.headers["Cache-Control"] = "no-cache"  # a new release's page must not be stale
    return response
