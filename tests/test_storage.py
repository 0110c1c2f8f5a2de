"""The file store under trouble: a full disk answers 507 with nothing stored, a kill -9 mid-write leaves nothing for long."""
from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from app import create_app
from app.storage import TEMP_GRACE, TEMP_PREFIX
from conftest import make_settings, wait_for
from drawing import draw_page, png_bytes
from server_process import ServerProcess, query


def page(text: str) -> bytes:
    return png_bytes(draw_page([text, "Total: $7.00"], size=(600, 240)))


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MB tmpfs of its own (root can mount one); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Write until the disk refuses another byte."""
    with open(disk / "filler", "wb", buffering=0) as fh:
        for size in (1 << 20, 4096, 1):
            try:
                while fh.write(b"\0" * size):
                    pass
            except OSError:
                pass


def test_a_full_disk_is_507_with_nothing_stored_even_for_a_cache_hit(small_disk, start_service, http):
    settings = make_settings(small_disk, data_dir=small_disk / "data")
    svc = start_service(create_app(settings))
    known = page("Stored before the disk filled")
    first = http.post(svc.url + "/api/tasks", data={"type": "document"}, files=[("file", ("p.png", known))], timeout=30)
    assert wait_for(http, svc.url + first.headers["Location"])["status"] == "completed"
    fill(small_disk)
    rows = query(settings.data_dir, "SELECT count(*) FROM tasks")[0][0]
    files = sorted(p.name for p in settings.files_dir.rglob("*") if p.is_file())
    for data in (page("A new upload on a full disk"), known):  # a new file, then the cache hit
        r = http.post(svc.url + "/api/tasks", data={"type": "document"}, files=[("file", ("p.png", data))], timeout=30)
        if data is known and r.status_code == 202:
            assert r.json()["result"]["cached"] is True  # SQLite found room in pages it already had: fine
            rows += 1
            continue
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "insufficient_storage" and r.headers["Retry-After"]
    assert query(settings.data_dir, "SELECT count(*) FROM tasks")[0][0] == rows
    assert sorted(p.name for p in settings.files_dir.rglob("*") if p.is_file()) == files  # no file, no temporary
    (small_disk / "filler").unlink()
    r = http.post(svc.url + "/api/tasks", data={"type": "document"}, files=[("file", ("p.png", page("Room again")))],
                  timeout=30)
    assert r.status_code == 202


def temporaries(data_dir: Path) -> list[Path]:
    return list((data_dir / "files").glob(f"*/{TEMP_PREFIX}*"))


def test_uploads_half_written_at_a_kill_9_are_swept_by_the_janitor(tmp_path):
    data_dir = tmp_path / "data"
    leaked: list[Path] = []
    for attempt in range(8):
        big = noise_bmp(6000, 6000)  # 36 MB, a valid image: long enough to write that a kill lands mid-write
        server = ServerProcess(data_dir, tmp_path / "server.log", DOCPROC_MAX_UPLOAD_MB="60").start()
        posting = threading.Thread(target=_post_quietly, args=(server.url, big), name="test-upload", daemon=True)
        posting.start()
        end = time.monotonic() + 20
        while not (leaked := temporaries(data_dir)) and time.monotonic() < end and posting.is_alive():
            pass  # spin: the temporary exists only while the file is written
        server.kill()
        posting.join(30)
        leaked = temporaries(data_dir)
        if leaked:
            break
    if not leaked:
        pytest.skip("no kill landed while an upload was being written (the machine is too fast)")
    for tmp in leaked:  # as old as a temporary must be before it counts as left behind
        past = time.time() - TEMP_GRACE - 60
        os.utime(tmp, (past, past))
    server = ServerProcess(data_dir, tmp_path / "server.log", DOCPROC_JANITOR_INTERVAL="0.2").start()
    try:
        end = time.monotonic() + 20
        while temporaries(data_dir) and time.monotonic() < end:
            time.sleep(0.1)
        assert temporaries(data_dir) == []
        assert query(data_dir, "SELECT count(*) FROM tasks")[0][0] == 0  # nothing was acknowledged
    finally:
        server.kill()


def noise_bmp(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.frombytes("L", (width, height), os.urandom(width * height)).save(out, "BMP")
    return out.getvalue()


def _post_quietly(url: str, data: bytes) -> None:
    try:
        requests.post(url + "/api/tasks", data={"type": "document"}, files=[("file", ("big.bmp", data))], timeout=60)
    except requests.RequestException:
        pass  # the server was killed under it
