"""`document`: OCR every page, then title, description, tags and key facts."""
from ..extract.fields import FIELDS_OPTION
from .base import TaskContext, ocr_and_extract

TYPE = "document"
OPTIONS = {"fields": FIELDS_OPTION}  # beyond the common ones


def run(ctx: TaskContext) -> dict:
    return ocr_and_extract(ctx, "document")
