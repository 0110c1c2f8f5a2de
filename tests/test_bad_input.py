"""Hostile and broken requests: the exact status and error code, nothing stored, the server unharmed."""
from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from app import create_app
from app.auth import create_key
from app.errors import BadInput
from app.intake import InspectionCache, Upload, inspect_uploads
from app.storage import FileStore
from conftest import make_settings, wait_for
from drawing import bomb_png, draw_page, pdf_bytes, png_bytes, tiff_bytes
from server_process import query

LIMITS = dict(max_upload_mb=1, max_files=3, max_batch_files=4, max_pages=3)


def small(n: int = 0) -> bytes:
    return png_bytes(draw_page([f"Bad input test {n}", "Total: $5.00"], size=(600, 200), font_size=28, margin=20))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_of_size(width: int, height: int) -> bytes:
    """A PNG whose header says width x height (Pillow cannot save a 0x0 image, so build it by hand)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = (b"\x00" + b"\xff" * width) * height
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def icon() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (64, 64), 255).save(buf, "ICO")  # a real image format the service does not take
    return buf.getvalue()


def unreadable_pdf() -> bytes:
    """Starts like a PDF, but there is nothing a reader could recover: no objects, no pages."""
    return b"%PDF-1.7\n" + b"\x00\x13garbage that is not a PDF body\n" * 40 + b"%%EOF\n"


def encrypted_pdf(user_password: str) -> bytes:
    """A real one-page PDF, encrypted: with an empty user password it opens, yet is still encrypted."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes([draw_page(["Secret page"], size=(600, 300))]))))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_broken_xref() -> bytes:
    """A real one-page PDF whose cross-reference table is overwritten with junk."""
    data = pdf_bytes([draw_page(["Broken xref page", "Total: $9.00"], size=(600, 300), font_size=28)])
    start = data.rindex(b"\nxref\n") + 1
    end = data.index(b"trailer", start)
    return data[:start] + b"xref\n0 7\nthis is not a cross-reference table at all\n" + data[end:]


def multipart(*files, **fields):
    return {"data": {"type": "document", **fields}, "files": list(files)}


def upload(data: bytes, name: str = "page.png"):
    return ("file", (name, data, "application/octet-stream"))


# (id, method, path, request kwargs, status, error code)
CASES = [
    ("no file", "POST", "/api/tasks", {"files": {"type": (None, "document")}}, 400, "no_file"),
    ("no file (json)", "POST", "/api/tasks", {"json": {"type": "document"}}, 400, "no_file"),
    ("url-encoded form", "POST", "/api/tasks", {"data": {"type": "document"}}, 415, "unsupported_content_type"),
    ("empty file", "POST", "/api/tasks", multipart(upload(b"")), 400, "empty_file"),
    ("text named .png", "POST", "/api/tasks", multipart(upload(b"just some text, not an image\n" * 10)), 415,
     "unsupported_media_type"),
    ("truncated png", "POST", "/api/tasks", multipart(upload(small()[:400])), 400, "corrupt_image"),
    ("decompression bomb", "POST", "/api/tasks", multipart(upload(bomb_png(10000, 10000))), 400, "image_too_large"),
    ("0x0 image", "POST", "/api/tasks", multipart(upload(png_of_size(0, 0))), 400, "corrupt_image"),
    ("1x1 image", "POST", "/api/tasks", multipart(upload(png_of_size(1, 1))), 400, "image_too_small"),
    ("over max upload", "POST", "/api/tasks", multipart(upload(b"\x89PNG\r\n\x1a\n" + bytes(1024 * 1024 + 1))), 413,
     "payload_too_large"),
    ("too many files", "POST", "/api/tasks", multipart(*[upload(small(n)) for n in range(4)]), 413, "too_many_files"),
    ("too many files in a batch", "POST", "/api/batches", multipart(*[upload(small(n)) for n in range(5)]), 413,
     "too_many_files"),
    ("too many pages", "POST", "/api/tasks",
     multipart(upload(tiff_bytes([draw_page([f"p{i}"], size=(200, 200)) for i in range(4)]), "four.tiff")), 413,
     "too_many_pages"),
    ("too many pages over files", "POST", "/api/tasks",
     multipart(upload(tiff_bytes([draw_page(["a"], size=(200, 200))] * 2), "a.tiff"),
               upload(tiff_bytes([draw_page(["b"], size=(200, 200))] * 2), "b.tiff")), 413, "too_many_pages"),
    ("unsupported file type", "POST", "/api/tasks", multipart(upload(icon(), "a.ico")), 415, "unsupported_media_type"),
    ("unsupported body type", "POST", "/api/tasks", {"data": b"hello", "headers": {"Content-Type": "text/plain"}},
     415, "unsupported_content_type"),
    ("malformed multipart", "POST", "/api/tasks",
     {"data": b"--xyz\r\nthis is not a part\r\n", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}},
     400, "malformed_multipart"),
    ("multipart without boundary", "POST", "/api/tasks",
     {"data": b"type=document", "headers": {"Content-Type": "multipart/form-data"}}, 400, "malformed_multipart"),
    ("bad json", "POST", "/api/tasks", {"data": b'{"type": "document",', "headers": {"Content-Type": "application/json"}},
     400, "invalid_json"),
    ("json not an object", "POST", "/api/tasks", {"json": ["document"]}, 400, "invalid_json"),
    ("invalid base64", "POST", "/api/tasks", {"json": {"type": "document", "images": ["@@not base64@@"]}}, 400,
     "invalid_base64"),
    ("images not a list", "POST", "/api/tasks", {"json": {"type": "document", "images": b64(small())}}, 400,
     "invalid_images"),
    ("missing type", "POST", "/api/tasks", {"json": {"images": [b64(small())]}}, 400, "missing_field"),
    ("unknown type", "POST", "/api/tasks", multipart(upload(small()), type="invoice"), 400, "unknown_type"),
    ("priority out of range", "POST", "/api/tasks", multipart(upload(small()), priority="10"), 400, "invalid_priority"),
    ("priority negative", "POST", "/api/tasks", multipart(upload(small()), priority="-1"), 400, "invalid_priority"),
    ("priority not a number", "POST", "/api/tasks", multipart(upload(small()), priority="high"), 400,
     "invalid_priority"),
    ("priority a float", "POST", "/api/tasks", {"json": {"type": "document", "images": [b64(small())], "priority": 2.5}},
     400, "invalid_priority"),
    ("options not an object", "POST", "/api/tasks", {"json": {"type": "document", "images": [b64(small())],
                                                              "options": ["lang", "eng"]}}, 400, "invalid_options"),
    ("options not json", "POST", "/api/tasks", multipart(upload(small()), options="{lang: eng"), 400, "invalid_options"),
    ("words not a boolean", "POST", "/api/tasks", multipart(upload(small()), options='{"words": "yes"}'), 400,
     "invalid_options"),
    ("unknown option", "POST", "/api/tasks", multipart(upload(small()), options='{"colour": "blue"}'), 400,
     "unknown_option"),
    ("language not installed", "POST", "/api/tasks", multipart(upload(small()), options='{"lang": "klingon"}'), 400,
     "unsupported_language"),
    ("library missing", "POST", "/api/tasks", multipart(upload(small()), type="form_filling"), 400, "missing_option"),
    ("library id unknown", "POST", "/api/tasks",
     multipart(upload(small()), type="form_filling", options=json.dumps({"library": ["6f1c3a52-8a51-4b8e-9a7e-0c2f1d9e4b11"]})),
     400, "unknown_library_task"),
    ("library id not a uuid", "POST", "/api/tasks",
     multipart(upload(small()), type="form_filling", options='{"library": ["../../etc/passwd"]}'), 400,
     "unknown_library_task"),
    ("unreadable pdf", "POST", "/api/tasks", multipart(upload(unreadable_pdf(), "x.pdf")), 400, "corrupt_pdf"),
    ("encrypted pdf with a password", "POST", "/api/tasks", multipart(upload(encrypted_pdf("secret"), "x.pdf")), 400,
     "pdf_password_protected"),
    ("options nested 5000 deep", "POST", "/api/tasks", multipart(upload(small()), options="[" * 5000 + "]" * 5000), 400,
     "invalid_options"),
    ("options.library nested deep", "POST", "/api/tasks",
     multipart(upload(small()), type="form_filling", options='{"library": ' + "[" * 200 + "]" * 200 + "}"), 400,
     "invalid_options"),
    ("options.fields nested deep", "POST", "/api/tasks",
     multipart(upload(small()), options='{"fields": ' + "[" * 40 + "]" * 40 + "}"), 400, "invalid_options"),
    ("json body nested 5000 deep", "POST", "/api/tasks",
     {"data": b"[" * 5000 + b"]" * 5000, "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
    ("json options nested deep", "POST", "/api/tasks",
     {"data": b'{"type": "document", "options": {"library": ' + b"[" * 3000 + b"]" * 3000 + b"}}",
      "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
    ("lone surrogate as inline library key", "POST", "/api/tasks",
     multipart(upload(small()), type="form_filling", options='{"library": [{"kv": {"\\ud800": "x"}}]}'), 400,
     "invalid_options"),
    ("lone surrogate as inline library value (json)", "POST", "/api/tasks",
     {"data": b'{"type": "form_filling", "options": {"library": [{"kv": {"Name": "\\udc00"}}]}}',
      "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
    ("huge int in inline kv", "POST", "/api/tasks",
     multipart(upload(small()), type="form_filling", options='{"library": [{"kv": {"Name": 1180591620717411303424}}]}'),
     400, "invalid_options"),
    ("NaN in inline kv", "POST", "/api/tasks",
     multipart(upload(small()), type="form_filling", options='{"library": [{"kv": {"Date": NaN}}]}'), 400,
     "invalid_options"),
    ("callback port out of range", "POST", "/api/tasks",
     multipart(upload(small()), options='{"callback_url": "http://127.0.0.1:99999/"}'), 400, "invalid_callback_url"),
    ("callback broken ipv6 literal", "POST", "/api/tasks",
     multipart(upload(small()), options='{"callback_url": "http://[::1/"}'), 400, "invalid_callback_url"),
    ("callback port not a number", "POST", "/api/tasks",
     multipart(upload(small()), options='{"callback_url": "http://127.0.0.1:abc/"}'), 400, "invalid_callback_url"),
    *[(f"callback to {host}", "POST", "/api/tasks", multipart(upload(small()), options=json.dumps(
        {"callback_url": f"http://[{host}]/hook"})), 400, "callback_url_not_allowed")
      for host in ("64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "::7f00:1", "2002:7f00:1::", "::ffff:169.254.169.254",
                   "2001:0:4136:e378:8000:63bf:3fff:fdd2")],
    ("a 500 KB lang", "POST", "/api/tasks", multipart(upload(small()), options=json.dumps({"lang": "x" * 500_000})), 400,
     "unsupported_language"),
    ("too many form parts", "POST", "/api/tasks",
     multipart(upload(small()), **{f"extra{n}": "x" for n in range(40)}), 413, "too_many_parts"),
    ("more files than allowed", "POST", "/api/tasks", multipart(*[upload(b"x") for _ in range(30)]), 413,
     "too_many_files"),
    ("more files than parts allowed", "POST", "/api/tasks", multipart(*[upload(b"x") for _ in range(40)]), 413,
     "too_many_parts"),
    ("task id not a uuid", "GET", "/api/tasks/../../etc/passwd", {}, 404, "not_found"),
    ("task id not a uuid (cancel)", "DELETE", "/api/tasks/1%20OR%201=1", {}, 404, "not_found"),
    ("unknown task id", "GET", "/api/tasks/6f1c3a52-8a51-4b8e-9a7e-0c2f1d9e4b11", {}, 404, "not_found"),
    ("limit -1", "GET", "/api/tasks?limit=-1", {}, 400, "invalid_limit"),
    ("limit 100000", "GET", "/api/tasks?limit=100000", {}, 400, "invalid_limit"),
    ("bad status filter", "GET", "/api/tasks?status=done", {}, 400, "invalid_status"),
    ("bad cursor", "GET", "/api/tasks?cursor=abc", {}, 400, "invalid_cursor"),
    ("bad wait", "GET", "/api/tasks/6f1c3a52-8a51-4b8e-9a7e-0c2f1d9e4b11?wait=forever", {}, 400, "invalid_wait"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One real service (over a socket) for the whole table; each case checks it is still well."""
    from app.server import Service

    settings = make_settings(tmp_path_factory.mktemp("bad"), **LIMITS)
    svc = Service(create_app(settings)).start()
    yield svc
    svc.stop(grace=5)


def footprint(settings) -> tuple[int, list[str]]:
    """Rows in tasks, and every file under data/files (including half-written temporaries)."""
    files = sorted(str(p) for p in settings.files_dir.rglob("*") if p.is_file())
    return query(settings.data_dir, "SELECT count(*) FROM tasks")[0][0], files


def test_the_table_is_big_enough():
    assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,method,path,kwargs,status,code", CASES, ids=[c[0] for c in CASES])
def test_bad_request(server, http, name, method, path, kwargs, status, code):
    settings = server.rt.settings
    before = footprint(settings)
    r = http.request(method, server.url + path, timeout=30, **kwargs)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text[:500]
    assert 0 < len(r.json()["error"]["message"]) < 300  # said in a line; a client's value echoed only in part
    if status in (429, 503):
        assert r.headers["Retry-After"]
    assert footprint(settings) == before  # no row, no file, no temporary left behind
    assert http.get(server.url + "/api/health", timeout=10).status_code == 200


def test_still_serves_real_work_after_the_table(server, http):
    r = http.post(server.url + "/api/tasks", data={"type": "document"}, files=[upload(small(99))], timeout=30)
    assert r.status_code == 202
    task = wait_for(http, server.url + r.headers["Location"])
    assert task["status"] == "completed" and "99" in task["result"]["text"]


def test_filename_with_dot_dots_is_only_a_label(tmp_path, start_service, http):
    settings = make_settings(tmp_path)
    svc = start_service(create_app(settings))
    everything = {p for p in tmp_path.rglob("*")}
    names = ["../../escape.png", "..\\..\\escape2.png", "/etc/cron.d/escape3.png", "....//x/../escape4.png"]
    ids = []
    for n, name in enumerate(names):
        r = http.post(svc.url + "/api/tasks", data={"type": "document"}, files=[upload(small(10 + n), name)], timeout=30)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    new = {p for p in tmp_path.rglob("*")} - everything
    new_files = [p for p in new if p.is_file()]
    # Accepted safely: files are stored under their content hash, inside data/files and nowhere else.
    assert len(new_files) == 4 and all(p.parent.parent == settings.files_dir for p in new_files)
    assert all(len(p.name) == 64 and ".." not in str(p.relative_to(settings.files_dir)) for p in new_files)
    for name in names:  # where a naive join with the upload dir or the working dir would have written
        for base in (settings.files_dir, settings.data_dir, Path.cwd()):
            assert not (base / name.replace("\\", "/")).exists()
    stored = [json.loads(r["input"])["files"][0]["name"] for r in
              query(settings.data_dir, "SELECT input FROM tasks ORDER BY rowid")]
    # Kept as a label only, without any directory part (the multipart parser eats the backslashes).
    assert [s.lstrip(".") for s in stored] == ["escape.png", "escape2.png", "escape3.png", "escape4.png"]
    assert not any("/" in s or "\\" in s for s in stored)
    for task_id in ids:
        assert wait_for(http, f"{svc.url}/api/tasks/{task_id}")["status"] == "completed"


def test_pdf_with_broken_xref_is_repaired_and_read(tmp_path, start_service, http):
    # pdfium rebuilds a broken cross-reference table by scanning the objects, as viewers do:
    # the honest answer is to accept such a file; a file with nothing to recover is 400 (table above).
    svc = start_service(create_app(make_settings(tmp_path)))
    r = http.post(svc.url + "/api/tasks", data={"type": "document"},
                  files=[upload(pdf_broken_xref(), "broken.pdf")], timeout=30)
    assert r.status_code == 202, r.text
    task = wait_for(http, svc.url + r.headers["Location"])
    assert task["status"] == "completed" and "Broken xref page" in task["result"]["text"]


def test_library_task_of_another_tenant_looks_like_a_missing_one(tmp_path, start_service, http):
    settings = make_settings(tmp_path)
    app = create_app(settings)
    rt = app.extensions["docproc"]
    alice = {"Authorization": f"Bearer {create_key(rt.db, 'alice')}"}
    bob = {"Authorization": f"Bearer {create_key(rt.db, 'bob')}"}
    svc = start_service(app)
    r = http.post(svc.url + "/api/tasks", headers=alice, data={"type": "document"}, files=[upload(small(1))], timeout=30)
    url = svc.url + r.headers["Location"]
    http.headers.update(alice)
    assert wait_for(http, url)["status"] == "completed"
    task_id = r.json()["id"]
    before = footprint(settings)
    options = json.dumps({"library": [task_id]})
    r = http.post(svc.url + "/api/tasks", headers=bob, data={"type": "form_filling", "options": options},
                  files=[upload(small(2))], timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_library_task"
    assert footprint(settings) == before
    r = http.post(svc.url + "/api/tasks", headers=alice, data={"type": "form_filling", "options": options},
                  files=[upload(small(2))], timeout=30)
    assert r.status_code == 202  # the owner may use it


def test_a_refusal_is_never_remembered_and_the_inspection_memory_is_bounded(tmp_path):
    settings = make_settings(tmp_path)
    cache = InspectionCache(size=2)
    broken = Upload(png_bytes(draw_page(["x"], size=(200, 200)))[:300], "cut.png")
    for _ in range(2):  # the second attempt decodes again and is refused again
        with pytest.raises(BadInput) as refused:
            inspect_uploads([broken], [FileStore.digest(broken.data)], settings, tenant="t", cache=cache)
        assert refused.value.code == "corrupt_image"
    pages = [Upload(png_bytes(draw_page([f"page {n}"], size=(200, 200))), f"{n}.png") for n in range(3)]
    hashes = [FileStore.digest(p.data) for p in pages]
    records = inspect_uploads(pages, hashes, settings, tenant="t", cache=cache)
    assert [r["media_type"] for r in records] == ["image/png"] * 3 and [r["pages"] for r in records] == [1, 1, 1]
    assert cache.get("t", hashes[0]) is None  # the oldest went when the third came in
    assert cache.get("t", hashes[1]).pages == 1 and cache.get("t", hashes[2]).media_type == "image/png"
    assert cache.get("other", hashes[1]) is None  # remembered for the tenant that sent it only


def test_each_limit_names_itself_not_the_body_size(tmp_path, start_service, http):
    svc = start_service(create_app(make_settings(tmp_path, max_upload_mb=5)))
    big_field = {"data": {"type": "document", "options": "x" * (1024 * 1024 + 10)}, "files": [upload(small())]}
    r = http.post(svc.url + "/api/tasks", timeout=30, **big_field)
    assert r.status_code == 413 and r.json()["error"]["code"] == "field_too_large"
    assert "options" in r.json()["error"]["message"] and "MAX_UPLOAD" not in r.json()["error"]["message"]
    r = http.post(svc.url + "/api/tasks", timeout=30, **multipart(upload(small()), **{f"f{n}": "x" for n in range(80)}))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_parts"
    assert "MAX_UPLOAD" not in r.json()["error"]["message"]
