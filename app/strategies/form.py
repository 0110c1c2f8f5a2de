"""`form`: a document result plus the labels of blank fields still to fill."""
from .base import TaskContext, ocr_and_extract

TYPE = "form"
OPTIONS: dict = {}


def run(ctx: TaskContext) -> dict:
    return ocr_and_extract(ctx, "form")
