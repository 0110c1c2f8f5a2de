"""Passing storage faults: a lock held by another process past the busy timeout, a full disk. Running tasks ride them out,
none is failed or left behind, and health says what is wrong meanwhile."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from app import create_app
from conftest import make_settings, wait_for
from drawing import draw_page, receipt_lines, tiff_bytes


def submit_pages(http, url: str, n: int, pages: int = 3) -> list[str]:
    ids = []
    for i in range(n):
        doc = tiff_bytes([draw_page([f"Fault test {i} page {p}"] + receipt_lines()) for p in range(pages)])
        r = http.post(url + "/api/tasks", data={"type": "document"}, files={"file": ("t.tiff", doc, "image/tiff")})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    return ids


def degraded(http, url: str) -> dict | None:
    """The health body when it answers 503, else None."""
    r = http.get(url + "/api/health")
    return r.json() if r.status_code == 503 else None


def until(predicate, timeout: float, what: str, interval: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_lock_held_past_the_busy_timeout_fails_nothing(tmp_path, start_service, http):
    settings = make_settings(tmp_path, workers=2, ocr_concurrency=2, db_busy_timeout=1.0)
    service = start_service(create_app(settings))
    rt = service.rt
    ids = submit_pages(http, service.url, 4)
    until(lambda: rt.executor.busy() >= 1, 30, "a running task")
    other = sqlite3.connect(settings.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock for 5 s
    try:
        health = until(lambda: degraded(http, service.url), 15, "health to report the fault")
        assert health["storage"]["ok"] is False and "busy" in health["storage"]["error"]
        time.sleep(3)
    finally:
        other.execute("COMMIT")
        other.close()
    finals = [wait_for(http, f"{service.url}/api/tasks/{t}", timeout=90) for t in ids]
    assert [t["status"] for t in finals] == ["completed"] * 4, [t["errors"] for t in finals]
    assert http.get(service.url + "/api/health").json()["storage"] == {"ok": True}


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs for the data directory, so the test can fill it; skipped where mounting is refused."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the disk; the returned file frees them when deleted."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_for_a_few_seconds_fails_nothing(small_disk, start_service, http):
    settings = make_settings(small_disk, workers=3, ocr_concurrency=2)
    service = start_service(create_app(settings))
    rt = service.rt
    ids = submit_pages(http, service.url, 6)
    until(lambda: rt.executor.busy() >= 2, 30, "running tasks")
    filler = fill(small_disk)
    try:
        health = until(lambda: degraded(http, service.url), 20, "health to report the full disk")
        assert health["storage"]["ok"] is False and "full" in health["storage"]["error"]
        time.sleep(4)
    finally:
        os.unlink(filler)
    finals = [wait_for(http, f"{service.url}/api/tasks/{t}", timeout=120) for t in ids]
    assert [t["status"] for t in finals] == ["completed"] * 6, [t["errors"] for t in finals]
    until(lambda: http.get(service.url + "/api/health").status_code == 200, 30, "health to recover")
    assert not [t for t in threading.enumerate() if t.name.startswith("docproc-worker") and not t.is_alive()]
