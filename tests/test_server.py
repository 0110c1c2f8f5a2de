"""Starting the real process (clear one-line refusals instead of tracebacks), and its HTTP server."""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.http_server import HttpServer

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


# -- the in-process HTTP server ---------------------------------------------------------------------
def _hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/stream":
        return (f"chunk {n}\n".encode() for n in range(3))
    return [f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}?{environ['QUERY_STRING']}".encode()]


def test_http_server_serves_stops_and_frees_its_port():
    server = HttpServer(_hello, host="127.0.0.1", port=0, threads=2, max_body=1024).start()
    port = server.port
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    idle.request("GET", "/a?b=1")
    assert idle.getresponse().read() == b"GET /a?b=1"
    stream = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    stream.request("GET", "/stream")
    assert stream.getresponse().read() == b"chunk 0\nchunk 1\nchunk 2\n"
    stream.close()
    assert server.stop()
    # The idle keep-alive connection was closed, and nothing listens on the port any more.
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        idle.request("GET", "/again")
        idle.getresponse()
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    again = HttpServer(_hello, host="127.0.0.1", port=port, threads=1, max_body=1024).start()  # the same port, at once
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/x", body=b"ignored")
        assert conn.getresponse().read() == b"POST /x?"
        conn.close()
    finally:
        assert again.stop()


def test_a_taken_port_is_an_oserror_before_anything_serves():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            HttpServer(_hello, host="127.0.0.1", port=taken.getsockname()[1], threads=1, max_body=1024).bind()
