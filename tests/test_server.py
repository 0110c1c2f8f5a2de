"""Starting the real process: clear one-line refusals instead of tracebacks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_server(env_extra: dict, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCPROC_", "OPENAI_"))}
    env.update({"DOCPROC_DATA_DIR": str(tmp_path / "data"), "DOCPROC_PORT": "0", **env_extra})
    return subprocess.run([sys.executable, "run.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_bad_setting_is_one_line_and_exit_2(tmp_path):
    r = run_server({"DOCPROC_WORKERS": "many"}, tmp_path)
    assert r.returncode == 2
    assert "DOCPROC_WORKERS must be an integer" in r.stderr and "Traceback" not in r.stderr


def test_public_address_without_keys_refuses_to_start(tmp_path):
    r = run_server({"DOCPROC_HOST": "0.0.0.0"}, tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "DOCPROC_ALLOW_ANONYMOUS" in r.stderr
    assert not list((tmp_path / "data").glob("files/*/*"))
