"""Every kind of file people send, through the real service over a real socket, read at least as well
as `tesseract FILE stdout` reads the same file (minus 0.01); refusals carry their documented code."""
from __future__ import annotations

import json
import time

import pytest
import requests

from app import create_app
from app.server import Service
from conftest import make_settings
import drawing
import inputs

PAGE = inputs.known_page()
IMAGE_FILES = inputs.image_files(PAGE)
BUDGET = 4_000_000  # a small OCR budget, so that an over-budget page is quick to make and to read


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("inputs"), ocr_max_pixels=BUDGET, max_pixels=60_000_000,
                             workers=4)
    app = create_app(settings)
    service = Service(app).start()
    yield service
    service.stop(grace=5)
    app.extensions["docproc"].db.close_all()


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


def run_all(http, url: str, files: dict[str, bytes], task_type: str = "document", **options) -> dict[str, dict]:
    """Submit each file as its own task in one batch; every finished task by file name (bounded wait)."""
    r = http.post(f"{url}/api/batches", data={"type": task_type, "options": json.dumps(options)},
                  files=[("file", (name, data, "application/octet-stream")) for name, data in files.items()])
    assert r.status_code == 202, r.text
    ids = dict(zip(files, r.json()["task_ids"]))
    out, end = {}, time.monotonic() + 240
    while len(out) < len(ids) and time.monotonic() < end:
        for name, task_id in ids.items():
            if name not in out:
                task = http.get(f"{url}/api/tasks/{task_id}", params={"wait": 2}, timeout=30).json()
                if task["status"] in ("completed", "failed", "cancelled"):
                    out[name] = task
    assert len(out) == len(ids), f"unfinished: {set(ids) - set(out)}"
    return out


def submit_one(http, url: str, name: str, data: bytes, task_type: str = "document", **options) -> dict:
    return run_all(http, url, {name: data}, task_type, **options)[name]


@pytest.fixture(scope="module")
def image_results(svc, http):
    return run_all(http, svc.url, IMAGE_FILES)


@pytest.fixture(scope="module")
def png_reference(tmp_path_factory):
    """Raw tesseract on a plain PNG of the page: the bar for files tesseract itself cannot open (HEIC)."""
    text = inputs.raw_tesseract(drawing.png_bytes(PAGE), tmp_path_factory.mktemp("raw"), "page.png")
    return inputs.accuracy(text)


@pytest.mark.parametrize("name", sorted(IMAGE_FILES))
def test_every_image_kind_reads_as_well_as_raw_tesseract(name, image_results, png_reference, tmp_path):
    task = image_results[name]
    assert task["status"] == "completed", task["errors"]
    (page,) = task["result"]["pages"]
    assert page["source"] == "ocr" and (page["width"], page["height"]) == PAGE.size
    ours = inputs.accuracy(task["result"]["text"])
    raw_text = inputs.raw_tesseract(IMAGE_FILES[name], tmp_path, name)
    raw = inputs.accuracy(raw_text) if raw_text is not None else png_reference
    assert ours >= raw - 0.01, (name, ours, raw, task["result"]["text"])
    assert ours >= 0.9, (name, ours)  # whatever raw tesseract makes of the file, the page itself is clean


def test_multipage_tiff_with_a_g4_page_reads_every_page(svc, http, tmp_path):
    letter = drawing.draw_page(drawing.letter_lines())
    buf = inputs.io.BytesIO()
    PAGE.convert("1").save(buf, "TIFF", save_all=True, compression="group4",
                           append_images=[letter.convert("1"), PAGE.convert("1")])
    task = submit_one(http, svc.url, "mixed.tif", buf.getvalue())
    assert task["status"] == "completed" and task["attempts"] == 1, task["errors"]
    texts = [p["text"] for p in task["result"]["pages"]]
    assert len(texts) == 3 and "Dear Mr. Smith" in texts[1]
    assert inputs.accuracy(texts[0]) >= 0.95 and inputs.accuracy(texts[2]) >= 0.95


def test_a_page_over_the_ocr_budget_is_scaled_down_not_refused(svc, http, tmp_path):
    big = drawing.draw_page(inputs.KNOWN_LINES, size=(3400, 2000), font_size=80, margin=200)  # 6.8 Mpx > budget
    data = drawing.png_bytes(big)
    task = submit_one(http, svc.url, "big.png", data)
    assert task["status"] == "completed", task["errors"]
    (page,) = task["result"]["pages"]
    assert page["width"] * page["height"] <= BUDGET and abs(page["width"] / page["height"] - 1.7) < 0.01
    assert inputs.accuracy(page["text"]) >= inputs.accuracy(inputs.raw_tesseract(data, tmp_path, "big.png")) - 0.01


def test_a_decompression_bomb_is_refused_before_it_is_decoded(svc, http):
    r = http.post(f"{svc.url}/api/tasks", data={"type": "document"},
                  files={"file": ("bomb.png", drawing.bomb_png(9000, 9000), "image/png")})  # 81 Mpx > 60 Mpx cap
    assert r.status_code == 400 and r.json()["error"]["code"] == "image_too_large", r.text


def test_gif_reads_its_first_frame_only(svc, http):
    other = drawing.draw_page(["A second frame of an animation"], size=PAGE.size)
    buf = inputs.io.BytesIO()
    PAGE.save(buf, "GIF", save_all=True, append_images=[other], duration=500)
    task = submit_one(http, svc.url, "anim.gif", buf.getvalue())
    assert task["status"] == "completed" and len(task["result"]["pages"]) == 1
    assert "second frame" not in task["result"]["text"] and inputs.accuracy(task["result"]["text"]) >= 0.95
