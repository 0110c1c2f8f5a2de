"""The multipart parser: the same fields and files as werkzeug's, one code per limit, malformed bodies refused."""
from __future__ import annotations

import io

import pytest
from werkzeug import formparser
from werkzeug.datastructures import MultiDict

from app import multipart
from app.errors import BadInput


def _body(boundary: str, parts: list[tuple[str, str | None, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, ctype, data in parts:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        if filename is not None:
            out += f'; filename="{filename}"'.encode()
        out += b"\r\n"
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _werkzeug(body: bytes, boundary: str):
    parser = formparser.FormDataParser(cls=MultiDict)
    _, form, files = parser.parse(io.BytesIO(body), "multipart/form-data", len(body), {"boundary": boundary})
    fields = {k: form.getlist(k)[0].encode() for k in form}
    seen = [(f.filename, f.read()) for _, f in files.items(multi=True)]
    for _, f in files.items(multi=True):
        f.close()
    return fields, seen


CASES = {
    "fields and a file": ("BB", [("type", None, None, b"document"), ("options", None, None, b'{"lang": "eng"}'),
                                 ("file", "a.png", "image/png", b"\x89PNG\r\n--B not yet\r\n-BB")]),
    "browser boundary, two files one name": ("----WebKitFormBoundaryX7", [
        ("file", "one.png", "image/png", b"\x00" * 300), ("file", "two.jpg", "image/jpeg", b"\xff\xd8" + b"-" * 70)]),
    "unicode field and filename": ("xyz", [("note", None, None, "größe ✓".encode()),
                                           ("file", "scan ü.pdf", "application/pdf", b"%PDF-1.4\n")]),
    "empty filename and empty field": ("b", [("file", "", "application/octet-stream", b""), ("type", None, None, b"")]),
    "file without a content type": ("q", [("file", "x.bin", None, b"abc")]),
    "a field given twice": ("q", [("type", None, None, b"form"), ("type", None, None, b"document")]),
}


@pytest.mark.parametrize("case", CASES)
def test_parses_like_werkzeug(case):
    boundary, parts = CASES[case]
    body = _body(boundary, parts)
    form = multipart.parse(body, boundary, max_files=5)
    assert (form.fields, form.files) == _werkzeug(body, boundary)


def _refusal(body: bytes, boundary: str = "BB", max_files: int = 5) -> tuple[int, str]:
    with pytest.raises(BadInput) as caught:
        multipart.parse(body, boundary, max_files=max_files)
    return caught.value.status, caught.value.code


def test_each_limit_has_its_own_code():
    many_fields = _body("BB", [(f"f{n}", None, None, b"x") for n in range(multipart.EXTRA_PARTS + 6)])
    assert _refusal(many_fields) == (413, "too_many_parts")
    files = _body("BB", [("file", f"{n}.png", None, b"x") for n in range(6)])
    assert len(multipart.parse(files, "BB", max_files=5).files) == 6  # counted by intake, after the type
    big_field = _body("BB", [("options", None, None, b"x" * (multipart.MAX_FIELD_BYTES + 1))])
    assert _refusal(big_field) == (413, "field_too_large")
    big_file = _body("BB", [("file", "big.bin", None, b"x" * (multipart.MAX_FIELD_BYTES + 1))])
    assert len(multipart.parse(big_file, "BB", max_files=1).files[0][1]) == multipart.MAX_FIELD_BYTES + 1
    long_header = f'--BB\r\nContent-Disposition: form-data; name="{"n" * 9000}"\r\n\r\nx\r\n--BB--\r\n'.encode()
    assert _refusal(long_header) == (413, "part_headers_too_large")


@pytest.mark.parametrize("body", [b"not multipart at all", b"--BB\r\nno colon in this header\r\n\r\nx\r\n--BB--\r\n",
                                  _body("BB", [("type", None, None, b"document")])[:-12]])
def test_a_broken_body_is_malformed(body):
    assert _refusal(body) == (400, "malformed_multipart")


def test_an_unnamed_part_is_ignored():
    body = b'--BB\r\nContent-Disposition: form-data; name=""\r\n\r\nx\r\n--BB\r\nContent-Disposition: form-data\r\n\r\ny\r\n--BB--\r\n'
    form = multipart.parse(body, "BB", max_files=1)
    assert (form.fields, form.files) == ({}, [])
