"""The OpenAPI document and its interactive page (Swagger UI, served from the installed package)."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from ..errors import BadInput
from ..openapi import build_spec
from . import runtime

bp = Blueprint("docs", __name__, url_prefix="/api")

ASSETS = {"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"}

# No inline script or style: the page must work under Content-Security-Policy default-src 'self'.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>docproc API</title>
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/api/docs/assets/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script>
</body>
</html>
"""


@bp.get("/openapi.json")
def openapi():
    settings = runtime().settings
    return jsonify(build_spec(settings.max_files, settings.max_batch_files))


@bp.get("/docs")
def docs():
    return Response(PAGE, mimetype="text/html")


@bp.get("/docs/assets/<filename>")
def docs_asset(filename: str):
    if filename not in ASSETS:
        raise BadInput(404, "not_found", "no such file")
    return send_from_directory(swagger_ui_path, filename, max_age=86400)
