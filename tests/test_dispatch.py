"""The dispatcher's contract: ids reach the queue of their step, the most urgent first, not before
they are due; an id that cannot be queued now says so (the janitor offers it again).

"local" is the embedded in-process queue; "celery" sends real messages to the session's Redis and
reads them back as a worker's consumer would (kombu, the same transport options).
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from app.queue import LocalQueue

WAIT = 5.0


class LocalSide:
    def __init__(self, maxsize=100):
        self.dispatcher = LocalQueue(maxsize)

    def take(self, phase: str, timeout: float = WAIT):
        """The next id a worker of this step would run, and when it may run."""
        task_id = self.dispatcher.get(timeout)
        return (task_id, time.time()) if task_id else (None, None)

    def close(self):
        self.dispatcher.close()


class CelerySide:
    def __init__(self, broker_url: str):
        from app.engine.celery_app import CeleryDispatcher, make_celery

        settings = SimpleNamespace(broker_url=broker_url, task_timeout=60.0, retry_max_delay=10.0)
        self.celery = make_celery(settings)
        self.dispatcher = CeleryDispatcher(self.celery)
        self.conn = self.celery.connection_for_read()
        self.queues = {}

    def take(self, phase: str, timeout: float = WAIT):
        from datetime import datetime

        queue = self.queues.get(phase) or self.queues.setdefault(phase, self.conn.SimpleQueue(phase, no_ack=True))
        try:
            message = queue.get(timeout=timeout)
        except queue.Empty:
            return None, None
        assert message.headers["task"] == f"docproc.{phase}"
        args, kwargs, _ = message.payload
        assert kwargs == {} and len(args) == 1  # the id only
        eta = message.headers.get("eta")
        return args[0], (datetime.fromisoformat(eta).timestamp() if eta else time.time())

    def close(self):
        for q in self.queues.values():
            q.close()
        self.conn.release()
        self.celery.close()


@pytest.fixture(params=["local", "celery"])
def side(request):
    if request.param == "local":
        s = LocalSide()
    else:
        redis = request.getfixturevalue("redis_server")
        s = CelerySide(redis.url(redis.new_db()))
    yield s
    s.close()


def test_an_id_reaches_the_queue_of_its_step(side):
    assert side.dispatcher.dispatch("t-ocr", 5)
    assert side.take("ocr")[0] == "t-ocr"
    if side.dispatcher.split_steps:
        assert side.dispatcher.dispatch("t-extract", 5, phase="extract")
        assert side.take("ocr", timeout=0.3)[0] is None
        assert side.take("extract")[0] == "t-extract"


def test_the_most_urgent_waiting_id_comes_out_first(side):
    for n in range(5):
        assert side.dispatcher.dispatch(f"low-{n}", 0)
    assert side.dispatcher.dispatch("urgent", 9)
    assert side.dispatcher.dispatch("middle", 5)
    order = [side.take("ocr")[0] for _ in range(7)]
    assert order[:2] == ["urgent", "middle"] and order[2:] == [f"low-{n}" for n in range(5)]


def test_a_delayed_id_is_not_run_before_it_is_due(side):
    due = time.time() + 1.0
    assert side.dispatcher.dispatch("later", 5, not_before=due)
    assert side.dispatcher.dispatch("now", 5)
    # Celery hands both to a worker at once, which holds the delayed one until its eta.
    runs = dict(side.take("ocr") for _ in range(2))
    assert set(runs) == {"now", "later"}
    assert runs["now"] < due - 0.5 and runs["later"] >= due - 0.05


def test_an_id_that_cannot_be_queued_says_so(request, tmp_path):
    full = LocalQueue(maxsize=1)
    assert full.dispatch("a", 5) and not full.dispatch("b", 5)
    request.getfixturevalue("redis_server")  # only where the distributed mode's packages are set up
    away = CelerySide(f"redis+socket://{tmp_path}/no-such.sock")
    try:
        started = time.monotonic()
        assert away.dispatcher.dispatch("c", 5) is False
        assert time.monotonic() - started < 30  # bounded: a few quick retries, then the janitor's turn
    finally:
        away.celery.close()
