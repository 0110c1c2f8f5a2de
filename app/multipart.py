"""werkzeug's multipart parsing without compiling two regexes per request.

werkzeug's MultipartDecoder compiles two patterns around each request's (random) boundary;
on a small upload that compile was most of the parse (~0.5 ms of ~2.4 ms CPU per cached
submission). The matchers below find the same matches with bytes.find plus one pattern
compiled once; the decoding itself stays werkzeug's.
"""
from __future__ import annotations

import re
import types

from flask import Request
from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder

_BREAKS = (b"\r\n", b"\n", b"\r")  # werkzeug's LINE_BREAK alternatives, in its order
# What may follow "--" + boundary: werkzeug's group 1, verbatim.
_TAIL = re.compile(rb"(--[^\S\n\r]*(?:\r\n|\n|\r)?|[^\S\n\r]*(?:\r\n|\n|\r))")


class _Match:
    """The part of re.Match the decoder reads: start(), end(), group(1)."""

    __slots__ = ("_start", "_tail")

    def __init__(self, start: int, tail: re.Match):
        self._start, self._tail = start, tail

    def start(self) -> int:
        return self._start

    def end(self) -> int:
        return self._tail.end()

    def group(self, n: int):
        return self._tail.group(n)


class BoundaryMatcher:
    """search() like werkzeug's `LINE_BREAK(?) --boundary (tail)` pattern (optional break: the preamble)."""

    def __init__(self, boundary: bytes, *, break_optional: bool):
        self.needle = b"--" + boundary
        self.break_optional = break_optional

    def search(self, buffer, pos: int = 0):
        """The leftmost match at or after pos, or None."""
        needle, n = self.needle, len(self.needle)
        best = None
        at = buffer.find(needle, pos)
        while at != -1:
            # The earliest start wins; a later occurrence can only start earlier when the needle
            # overlaps itself within two bytes, so look two occurrences ahead before deciding.
            if best is not None and at - 2 > best[0]:
                break
            tail = _TAIL.match(buffer, at + n)
            if tail is not None:
                start = self._start(buffer, pos, at)
                if start is not None and (best is None or start < best[0]):
                    best = (start, tail)
            at = buffer.find(needle, at + 1)
        return None if best is None else _Match(*best)

    def _start(self, buffer, pos: int, at: int) -> int | None:
        for brk in _BREAKS:  # the regex tries the alternatives in this order at each start
            s = at - len(brk)
            if s >= pos and buffer[s:at] == brk:
                return s
        return at if self.break_optional else None


class Decoder(MultipartDecoder):
    """werkzeug's decoder with the two per-boundary regexes replaced by BoundaryMatchers."""

    def __init__(self, boundary: bytes, max_form_memory_size: int | None = None, *, max_parts: int | None = None):
        # A fixed boundary: werkzeug's compile then hits re's cache; the real boundary follows.
        super().__init__(b"docproc", max_form_memory_size, max_parts=max_parts)
        self.boundary = boundary
        self.preamble_re = BoundaryMatcher(boundary, break_optional=True)
        self.boundary_re = BoundaryMatcher(boundary, break_optional=False)


class MultiPartParser(formparser.MultiPartParser):
    # werkzeug's own parse(), reading `MultipartDecoder` from a namespace that names ours.
    parse = types.FunctionType(formparser.MultiPartParser.parse.__code__,
                               {**vars(formparser), "MultipartDecoder": Decoder}, "parse")


class FormDataParser(formparser.FormDataParser):
    def _parse_multipart(self, stream, mimetype, content_length, options):
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        parser = MultiPartParser(stream_factory=self.stream_factory, max_form_memory_size=self.max_form_memory_size,
                                 max_form_parts=self.max_form_parts, cls=self.cls)
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files


class FastFormRequest(Request):
    """Flask's request with the multipart parser above."""

    form_data_parser_class = FormDataParser
