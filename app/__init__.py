"""docproc: turn photos and scans of documents and forms into structured data."""
from __future__ import annotations

from flask import Flask

from .config import Settings


def create_app(config: Settings | dict | None = None, *, extractor=None, clock=None) -> Flask:
    """Build the Flask app and its runtime (database, queue, pool); start nothing. clock: wall-clock seconds."""
    from . import api, auth
    from .jsonio import JsonProvider
    from .runtime import build_runtime

    if config is None:
        settings = Settings.from_env()
    elif isinstance(config, dict):
        settings = Settings.from_env().with_overrides(**config)
    else:
        settings = config
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.json = JsonProvider(app)  # orjson: serialising the task object was ~5% of a cached submission
    app.extensions["docproc"] = build_runtime(settings, extractor=extractor, **({"clock": clock} if clock else {}))
    auth.init_app(app)
    api.init_app(app)
    return app
