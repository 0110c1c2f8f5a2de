"""The HTTP API: blueprints and JSON errors."""
from flask import current_app


def runtime():
    """The service's Runtime (database, queue, pool, ...)."""
    return current_app.extensions["docproc"]


def waiters():
    """The cap and the waits of long-polls and event streams (app/api/waiting.py)."""
    return current_app.extensions["docproc_waiters"]


def init_app(app) -> None:
    from . import batches, documents, errors, health, tasks, web
    from .waiting import WaitSlots

    app.extensions["docproc_waiters"] = WaitSlots.for_threads(app.extensions["docproc"].settings.http_threads)

    errors.init_app(app)
    for module in (tasks, documents, batches, health):
        app.register_blueprint(module.bp)
    from . import docs, events, metrics

    for module in (events, docs, metrics):
        app.register_blueprint(module.bp)
    app.register_blueprint(web.bp)  # the page at /
