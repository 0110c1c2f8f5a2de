"""`document`: OCR every page, then title, description, tags and key facts."""
from .base import TaskContext, ocr_and_extract

TYPE = "document"
OPTIONS: dict = {}  # beyond the common ones


def run(ctx: TaskContext) -> dict:
    return ocr_and_extract(ctx, "document")
