"""A running tesseract can be stopped at once: a batch's abort(kill=True), the pool's stop, the service's
shutdown (first signal or second); nothing of it, process or file, outlives the service."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from app import ocr, pages
from app.ocr_pool import OcrPool, PageAborted
import drawing
from server_process import ServerProcess, query

# A page tesseract needs a minute or more for: every bounded wait below is far shorter, so a wait
# that ends in time proves the run was killed, not waited for.
HEAVY = drawing.draw_page([" ".join(drawing.letter_lines())[:300]] * 170, size=(4800, 6400), font_size=30,
                          line_gap=1.2, margin=60)
BOUND = 20.0


def tesseracts(parent: int | None = None, marker: str | None = None) -> list[int]:
    """Running tesseract processes: children of `parent`, or any whose command line holds `marker`."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            cmdline = (status.parent / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if fields.get("Name", "").strip() != "tesseract" or fields.get("State", "").strip().startswith("Z"):
            continue
        if (parent is not None and int(fields["PPid"]) == parent) or (marker and marker in cmdline):
            found.append(int(status.parent.name))
    return found


def until(check, timeout: float, what: str, interval: float = 0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s: {what}")


@pytest.fixture
def pool():
    engine = ocr.Tesseract(timeout=60)
    reader = pages.PageReader(engine)
    pool = OcrPool(reader.read, concurrency=2, on_stop=engine.close)
    pool.start()
    yield pool, engine
    pool.stop(timeout=10)


def heavy_ref() -> pages.PageRef:
    return pages.PageRef(drawing.png_bytes(HEAVY), "image/png", 0)


def test_abort_with_kill_stops_the_running_tesseract_at_once(pool):
    pool, _ = pool
    victim = pool.submit("victim", 5, [heavy_ref(), heavy_ref(), heavy_ref()], "eng")
    other = pool.submit("other", 5, [pages.PageRef(drawing.png_bytes(drawing.draw_page(["Still read"])),
                                                   "image/png", 0)], "eng")
    until(lambda: len(tesseracts(parent=os.getpid())) >= 1, 30, "tesseract running")
    victim.abort(kill=True)
    index, page, exc = victim.next_result(BOUND)  # queue.Empty here: the page was left running
    assert page is None and isinstance(exc, PageAborted), exc
    assert "Still read" in other.next_result(60)[1].text  # the other task's page was not touched
    until(lambda: not tesseracts(parent=os.getpid()), 5, "no tesseract left")


def test_stop_leaves_no_tesseract_and_no_files(pool):
    pool, engine = pool
    pool.submit("long", 5, [heavy_ref(), heavy_ref()], "eng")
    until(lambda: engine._workdir is not None and any(engine._workdir.iterdir()) and tesseracts(parent=os.getpid()),
          30, "tesseract running on its input")
    workdir = engine._workdir
    slots = list(pool._threads)
    pool.stop(timeout=BOUND)
    assert not any(t.is_alive() for t in slots)  # each slot's run was killed, so its thread ended
    assert not tesseracts(parent=os.getpid())
    assert not workdir.exists()  # and nothing in /tmp/tess_*: runs use only this directory


@pytest.mark.parametrize("signals", [1, 2], ids=["sigterm", "sigterm-twice"])
def test_shutdown_leaves_no_tesseract_behind(tmp_path, signals):
    srv = ServerProcess(tmp_path / "data", tmp_path / "server.log", DOCPROC_WORKERS="2", DOCPROC_OCR_CONCURRENCY="2",
                        DOCPROC_SHUTDOWN_GRACE="0.5")
    srv.start()
    try:
        with requests.Session() as http:
            data = drawing.tiff_bytes([HEAVY] * 4)
            r = http.post(srv.url + "/api/tasks", data={"type": "document"}, files={"file": ("big.tif", data)})
            assert r.status_code == 202
        running = until(lambda: tesseracts(parent=srv.pid), 30, "tesseract running in the service")
        cmdline = Path(f"/proc/{running[0]}/cmdline").read_bytes().decode().split("\0")
        workdir = Path(cmdline[1]).parent  # tesseract INPUT OUTPUT ...: the input is in the service's own dir
        assert workdir.name.startswith("docproc-ocr-")
        for _ in range(signals):
            srv.signal(signal.SIGTERM)
            time.sleep(0.05)
        code = srv.wait(timeout=30)
        assert code == 0 if signals == 1 else code in (0, 1)  # the second signal may land after the drain
        time.sleep(0.2)
        assert tesseracts(marker=str(workdir)) == []  # none left running, not even re-parented to init
        assert not workdir.exists()
        if signals == 1:
            (status,) = query(srv.data_dir, "SELECT status FROM tasks")[0]
            assert status == "pending"  # returned for the next start
    finally:
        srv.kill()


def test_a_cancel_stops_the_running_tesseract_at_once(tmp_path, start_service):
    from app import create_app
    from conftest import make_settings, wait_for

    service = start_service(create_app(make_settings(tmp_path, workers=1, ocr_concurrency=1)))
    with requests.Session() as http:
        r = http.post(service.url + "/api/tasks", data={"type": "document"},
                      files={"file": ("big.tif", drawing.tiff_bytes([HEAVY] * 3))})
        url = service.url + r.headers["Location"]
        until(lambda: tesseracts(parent=os.getpid()), 30, "tesseract running")
        assert http.delete(url).status_code == 202
        task = wait_for(http, url, timeout=BOUND)  # far less than its first page needs
    assert task["status"] == "cancelled", task["status"]
    until(lambda: not tesseracts(parent=os.getpid()), 5, "no tesseract left")
