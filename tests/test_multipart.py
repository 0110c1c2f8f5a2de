"""The app's multipart parser gives the same form and files as werkzeug's, and keeps its limits."""
from __future__ import annotations

import io

import pytest
from werkzeug import formparser
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from app.multipart import FastFormRequest, FormDataParser


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


def _parse(parser_class, body: bytes, boundary: str, **limits):
    parser = parser_class(cls=MultiDict, **limits)
    _, form, files = parser.parse(io.BytesIO(body), "multipart/form-data", len(body), {"boundary": boundary})
    seen_files = [(k, f.filename, f.content_type, f.read()) for k, f in files.items(multi=True)]
    for _, f in files.items(multi=True):
        f.close()
    return list(form.items(multi=True)), seen_files


CASES = {
    "fields and a file": ("BB", [("type", None, None, b"document"), ("options", None, None, b'{"lang": "eng"}'),
                                 ("file", "a.png", "image/png", b"\x89PNG\r\n--B not yet\r\n-BB")]),
    "browser boundary, two files one name": ("----WebKitFormBoundaryX7", [
        ("file", "one.png", "image/png", b"\x00" * 300), ("file", "two.jpg", "image/jpeg", b"\xff\xd8" + b"-" * 70)]),
    "unicode field and filename": ("xyz", [("note", None, None, "größe ✓".encode()),
                                           ("file", "scan ü.pdf", "application/pdf", b"%PDF-1.4\n")]),
    "empty filename and empty field": ("b", [("file", "", "application/octet-stream", b""), ("type", None, None, b"")]),
    "file without a content type": ("q", [("file", "x.bin", None, b"abc")]),
}


@pytest.mark.parametrize("case", CASES)
def test_parses_like_werkzeug(case):
    boundary, parts = CASES[case]
    body = _body(boundary, parts)
    assert _parse(FormDataParser, body, boundary) == _parse(formparser.FormDataParser, body, boundary)


def test_a_file_is_read_whole_and_in_memory():
    data = bytes(range(256)) * 4096  # 1 MiB, larger than any default spool threshold
    body = _body("BB", [("file", "big.bin", "application/octet-stream", data)])
    parser = FormDataParser(cls=MultiDict, max_content_length=len(body))
    _, _, files = parser.parse(io.BytesIO(body), "multipart/form-data", len(body), {"boundary": "BB"})
    upload = files["file"]
    assert isinstance(upload.stream, io.BytesIO)
    assert upload.read() == data


def test_too_many_parts_or_a_huge_field_is_413():
    body = _body("BB", [(f"f{n}", None, None, b"x") for n in range(5)])
    with pytest.raises(RequestEntityTooLarge):
        _parse(FormDataParser, body, "BB", max_form_parts=4)
    assert len(_parse(FormDataParser, body, "BB", max_form_parts=5)[0]) == 5
    body = _body("BB", [("options", None, None, b"x" * 101)])
    with pytest.raises(RequestEntityTooLarge):
        _parse(FormDataParser, body, "BB", max_form_memory_size=100)


@pytest.mark.parametrize("body", [b"not multipart at all", b"--BB\r\nContent-Disposition: form-data\r\n\r\nx\r\n--BB--\r\n",
                                  _body("BB", [("type", None, None, b"document")])[:-12]])
def test_a_broken_body_parses_to_nothing(body):
    assert _parse(FormDataParser, body, "BB") == ([], [])


def test_the_app_uses_it(app):
    assert app.request_class is FastFormRequest
