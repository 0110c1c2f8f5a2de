"""The boundary matchers find exactly what werkzeug's regexes find; the app parses forms with them."""
from __future__ import annotations

import io
import random

import pytest
from werkzeug.datastructures import MultiDict
from werkzeug.sansio.multipart import MultipartDecoder

from app.multipart import BoundaryMatcher, FormDataParser, FastFormRequest

PIECES = [b"\r\n", b"\n", b"\r", b"--", b"-", b" ", b"\t", b"x", b"\r\n\r\n", b"\x00"]


def _same(expected, got) -> None:
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert (got.start(), got.end(), got.group(1)) == (expected.start(), expected.end(), expected.group(1))


@pytest.mark.parametrize("boundary", [b"abc123", b"----WebKitFormBoundaryX7", b"-", b"--", b"-a-a", b"aaaa"])
def test_matchers_agree_with_werkzeug_regexes(boundary):
    reference = MultipartDecoder(boundary)
    preamble = BoundaryMatcher(boundary, break_optional=True)
    middle = BoundaryMatcher(boundary, break_optional=False)
    rng = random.Random(boundary)
    pieces = PIECES + [b"--" + boundary, boundary]
    for _ in range(3000):
        buffer = bytearray(b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))))
        pos = rng.randint(0, len(buffer))
        _same(reference.preamble_re.search(buffer, pos), preamble.search(buffer, pos))
        _same(reference.boundary_re.search(bytes(buffer)), middle.search(bytes(buffer)))


def test_form_and_files_parse_as_with_werkzeug():
    body = (b"--BB\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ndocument\r\n"
            b"--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n\x89PNG\r\n--B not yet\r\n"
            b"--BB--\r\n")
    _, form, files = FormDataParser(cls=MultiDict).parse(io.BytesIO(body), "multipart/form-data", len(body),
                                                          {"boundary": "BB"})
    assert form.to_dict() == {"type": "document"}
    upload = files["file"]
    try:
        assert upload.filename == "a.png"
        assert upload.read() == b"\x89PNG\r\n--B not yet"
    finally:
        upload.close()


def test_the_app_uses_it(app):
    assert app.request_class is FastFormRequest
