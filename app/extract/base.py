"""The extractor interface shared by the LLM client and the built-in local extractor."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class LibraryEntry:
    """One source of values for form filling: a finished task's kv, or an inline object."""

    kv: dict[str, str]
    source_type: str  # "task" or "inline"
    source_id: str  # task id, or "inline-<n>"


@dataclass
class Extraction:
    """What an extractor returns: the schema fields plus accounting."""

    data: dict
    extractor: str  # "local" or "llm:<model>"
    usage: dict = field(default_factory=dict)  # {"prompt_tokens", "completion_tokens", "total_tokens", "model"}


class Extractor(Protocol):
    name: str

    def extract(self, kind: str, pages: list, *, fields: list | None = None,
                timeout: float | None = None) -> Extraction:
        """kind "document": {title, description, tags[1..4], kv, provenance}; kind "form": the same plus fields[].

        pages: the OCR of each page (app.ocr.PageText: text, lines with word boxes); fields: the
        requested fields (app.extract.fields.FieldSpec), answered in `fields_requested`.
        timeout: seconds the whole call may take (the stage limit or the task deadline); a
        remote extractor abandons its request then, a local one may ignore it.
        """

    def fill(self, fields: list[str], form_text: str, library: list[LibraryEntry], *,
             timeout: float | None = None) -> Extraction:
        """{filled: {field: {value, source: {type, id}}}, missing: [field, ...]}."""
