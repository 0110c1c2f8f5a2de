"""Fixtures: a real app on a real SQLite file under tmp_path, served over a real socket."""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
import requests

from app import create_app
from app.config import Settings
from app.server import Service
from backends import BACKENDS, open_backend


@pytest.fixture(scope="session")
def corpus_root():
    """../shared/corpus (or DOCPROC_CORPUS); the tests that need it skip, saying why, when it is missing."""
    from bench import quality_corpus

    root = quality_corpus.corpus_dir()
    reason = quality_corpus.missing_reason(root)
    if reason:
        pytest.skip(reason)
    return root


@pytest.fixture(scope="session")
def corpus(corpus_root):
    """The corpus' documents with their truth, by set."""
    from bench import quality_corpus

    return quality_corpus.load(corpus_root)


def make_settings(tmp_path: Path, **overrides) -> Settings:
    """Settings independent of the caller's environment, sized for tests."""
    base = dict(host="127.0.0.1", port=0, data_dir=tmp_path / "data", workers=3, ocr_concurrency=2,
                http_threads=8, shutdown_grace=10.0, janitor_interval=3600.0, retry_base_delay=0.05,
                retry_max_delay=1.0, task_timeout=60.0, ocr_timeout=60.0, llm_timeout=5.0)
    base.update(overrides)
    base["data_dir"] = Path(base["data_dir"])
    return Settings(**base)


def llm_settings(tmp_path: Path, fake, **overrides) -> Settings:
    """Settings whose extractor is the real openai client talking to a FakeLLM on 127.0.0.1."""
    return make_settings(tmp_path, openai_api_key="test-key", openai_base_url=fake.base_url,
                         llm_model="fake-model", **overrides)


@pytest.fixture
def fake():
    """An OpenAI-compatible server on 127.0.0.1 (tests/fake_llm.py), closed after the test."""
    from fake_llm import FakeLLM

    with FakeLLM() as server:
        yield server


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path)


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["docproc"].db.close_all()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def start_service():
    """Factory: start a real service (HTTP + workers) for an app; stopped at teardown."""
    started = []

    def start(app) -> Service:
        service = Service(app).start()
        started.append(service)
        return service

    yield start
    for service in started:
        if service.rt.pool.started:
            service.stop(grace=5)


@pytest.fixture
def service(app, start_service):
    return start_service(app)


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def wait_for(http, url: str, *, statuses=("completed", "failed", "cancelled"), timeout: float = 60.0) -> dict:
    """Poll a task with long-polls until it reaches one of `statuses` (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        task = http.get(url, params={"wait": 5}, timeout=30).json()
        if task["status"] in statuses:
            return task
    raise AssertionError(f"task at {url} did not reach {statuses} within {timeout}s: {task}")


def db_rows(settings, sql, *args):
    """Query the service's SQLite file directly, as an outside observer."""
    conn = sqlite3.connect(settings.db_path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """An empty task store on each backend (tests/backends.py), closed after the test."""
    postgres = request.getfixturevalue("pg_template") if request.param == "postgres" else None
    s = open_backend(request.param, tmp_path, postgres)
    yield s
    s.close_all()
    if hasattr(s, "drop"):
        s.drop()


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL server for the whole session (tests/servers.py)."""
    import servers

    reason = servers.available()
    if reason and os.environ.get("CI"):
        pytest.fail(f"PostgreSQL and Redis are required in CI: {reason}")
    if reason:
        pytest.skip(reason)
    server = servers.PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server):
    """(server, name of a database with the schema applied), copied for each test that needs one."""
    from app.engine.postgres import PostgresDatabase

    url = pg_server.new_database()
    db = PostgresDatabase(url)
    db.init_schema()
    db.close_all()
    return pg_server, pg_server.database_name(url)


@pytest.fixture(scope="session")
def redis_server(pg_server):
    """A throwaway Redis server for the whole session; tests take a database number each."""
    import servers

    server = servers.RedisServer().start()
    yield server
    server.close()
