"""Which role a process takes from its settings, and the clear refusals of a half-set distributed mode."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from app.cli import main
from app.config import ConfigError, Settings
from app.runtime import role_for


def test_the_role_follows_the_broker_setting():
    assert role_for(Settings()) == "embedded"
    assert role_for(Settings(database_url="postgresql://x/y")) == "embedded"  # PostgreSQL under one process
    assert role_for(Settings(database_url="postgresql://x/y", broker_url="redis://h/0")) == "api"
    assert role_for(Settings(database_url="postgresql://x/y", broker_url="redis://h/0"), "worker") == "worker"


def test_a_broker_without_a_database_is_refused():
    with pytest.raises(ConfigError, match="DOCPROC_DATABASE_URL"):
        role_for(Settings(broker_url="redis://h/0"))


def test_the_worker_command_refuses_bad_queues_and_missing_settings(monkeypatch):
    result = CliRunner().invoke(main, ["worker", "--queues", "ocr,bogus"])
    assert result.exit_code == 2 and "--queues" in result.output
    for name in ("DOCPROC_DATABASE_URL", "DOCPROC_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 2
