"""The notifier's contract: a change or a cancel announced by one side is heard by the other.

"local" is one process (both sides are the same LocalNotifier); "postgres" is two processes as
far as the server knows (two PostgresNotifiers with their own pools and listeners on one database).
"""
from __future__ import annotations

import threading
import time

import psycopg
import pytest

from app.engine.notify import LocalNotifier

HEARD_WITHIN = 10.0  # bound of every wait below; a change normally arrives in milliseconds


@pytest.fixture(params=["local", "postgres"])
def pair(request):
    if request.param == "local":
        notifier = LocalNotifier()
        yield notifier, notifier
        notifier.close()
        return
    from app.engine.postgres import PostgresDatabase
    from app.engine.postgres_notify import PostgresNotifier

    server, template = request.getfixturevalue("pg_template")
    url = server.new_database(template)
    databases = [PostgresDatabase(url), PostgresDatabase(url)]
    notifiers = [PostgresNotifier(db).start() for db in databases]
    for n in notifiers:
        assert n.listening.wait(HEARD_WITHIN)
    yield tuple(notifiers)
    for n, db in zip(notifiers, databases):
        n.close()
        db.close_all()
    server.drop_database(url)


def test_a_change_wakes_a_waiter_on_the_other_side(pair):
    a, b = pair
    seen = b.version("t-1")
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(b.wait("t-1", seen, HEARD_WITHIN)))
    waiter.start()
    time.sleep(0.05)
    started = time.monotonic()
    a.publish("t-1")
    waiter.join(HEARD_WITHIN + 1)
    assert woke and woke[0] != seen and time.monotonic() - started < HEARD_WITHIN
    assert b.version("t-2") == b.version("t-2")  # another task did not move


def test_a_wait_without_a_change_times_out(pair):
    _, b = pair
    seen = b.version("quiet")
    started = time.monotonic()
    assert b.wait("quiet", seen, 0.2) == seen
    assert time.monotonic() - started >= 0.19


def test_a_cancel_reaches_the_other_sides_hooks(pair):
    a, b = pair
    heard = threading.Event()
    got = []
    b.on_cancel(lambda task_id: (got.append(task_id), heard.set()))
    a.announce_cancel("t-9")
    assert heard.wait(HEARD_WITHIN)
    time.sleep(0.2)  # our own notification coming back must not run the hooks a second time
    assert got == ["t-9"]


def test_close_wakes_waiters_at_once(pair):
    _, b = pair
    seen = b.version("t-1")
    done = []
    waiter = threading.Thread(target=lambda: done.append(b.wait("t-1", seen, 30)))
    waiter.start()
    time.sleep(0.05)
    b.close()
    waiter.join(5)
    assert done and not waiter.is_alive()


def test_the_listener_reconnects_after_losing_its_connection(pg_template):
    from app.engine.postgres import PostgresDatabase
    from app.engine.postgres_notify import PostgresNotifier

    server, template = pg_template
    url = server.new_database(template)
    sender_db, listener_db = PostgresDatabase(url), PostgresDatabase(url)
    sender, listener = PostgresNotifier(sender_db), PostgresNotifier(listener_db).start()
    try:
        assert listener.listening.wait(HEARD_WITHIN)
        seen = listener.version("t-1")
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE application_name = 'docproc-listener'")
        # Waiters are woken when it is back (they may have missed something)...
        assert listener.wait("t-1", seen, HEARD_WITHIN) != seen
        end = time.monotonic() + HEARD_WITHIN
        while not listener.listening.is_set() and time.monotonic() < end:
            time.sleep(0.05)
        # ...and changes made after the reconnection are heard again.
        seen = listener.version("t-1")
        sender.publish("t-1")
        assert listener.wait("t-1", seen, HEARD_WITHIN) != seen
    finally:
        listener.close()
        sender.close()
        sender_db.close_all()
        listener_db.close_all()
        server.drop_database(url)
