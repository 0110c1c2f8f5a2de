"""multipart/form-data bodies read with the `multipart` package's public push parser.

Each limit answers with its own code: the number of parts, the size of one text field, the
size of a part's headers; a body that is not multipart/form-data at all is malformed. The body
size itself is Flask's MAX_CONTENT_LENGTH (DOCPROC_MAX_UPLOAD_MB), checked before this runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import multipart

from .errors import BadInput, excerpt

MAX_FIELD_BYTES = 1024 * 1024  # one text field (options with an inline library is the largest)
MAX_PART_HEADER_BYTES = 8192  # one header line of one part
MAX_PART_HEADERS = 8  # header lines per part (RFC 7578 needs 3)
EXTRA_PARTS = 32  # parts allowed beyond max_files (text fields, and enough extra files to say "too many")


@dataclass
class Form:
    """The parts of a body: text fields (raw bytes, first value of a name wins) and files in order."""

    fields: dict[str, bytes] = field(default_factory=dict)
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (client filename, content)

    def text(self, name: str) -> str | None:
        raw = self.fields.get(name)
        return None if raw is None else raw.decode("utf-8", "replace")


def parse(body: bytes, boundary: str, *, max_files: int) -> Form:
    """Parse a whole body; BadInput 400 when it is malformed, 413 when it passes a limit.

    Files beyond max_files are counted by the caller (after the type is known, so a request wrong in
    both ways hears about the type); the part limit leaves room for them, so the caller sees them.
    """
    max_parts = max_files + EXTRA_PARTS
    try:
        parser = multipart.PushMultipartParser(boundary, len(body), max_header_size=MAX_PART_HEADER_BYTES,
                                               max_header_count=MAX_PART_HEADERS, max_segment_count=max_parts)
    except multipart.MultipartError as exc:
        raise BadInput(400, "malformed_multipart", f"the multipart boundary is not usable: {exc}") from None
    form = Form()
    segment, chunks, size = None, [], 0
    try:
        for event in parser.parse(body):
            if isinstance(event, multipart.MultipartSegment):
                segment, chunks, size = event, [], 0
            elif event is None:
                if segment.name:  # RFC 7578: every part is named; unnamed ones are ignored
                    data = b"".join(chunks)
                    if segment.filename is None:
                        form.fields.setdefault(segment.name, data)
                    else:
                        form.files.append((segment.filename, data))
                segment = None
            else:
                size += len(event)
                if segment.filename is None and size > MAX_FIELD_BYTES:
                    raise BadInput(413, "field_too_large", f"the form field {excerpt(segment.name)} is larger than "
                                   f"{MAX_FIELD_BYTES // 1024} KB")
                chunks.append(bytes(event))
        parser.close()
    except multipart.ParserLimitReached as exc:
        if "count" in str(exc) and "header" not in str(exc):
            raise BadInput(413, "too_many_parts", f"at most {max_parts} parts per multipart body") from None
        raise BadInput(413, "part_headers_too_large", f"a part's headers are over the limit ({MAX_PART_HEADERS} "
                       f"lines of at most {MAX_PART_HEADER_BYTES} bytes)") from None
    except multipart.MultipartError as exc:
        raise BadInput(400, "malformed_multipart", f"the multipart body could not be parsed: {exc}") from None
    return form
