"""`form`: a document result plus the labels of blank fields still to fill."""
from ..extract.fields import FIELDS_OPTION
from .base import TaskContext, ocr_and_extract

TYPE = "form"
OPTIONS = {"fields": FIELDS_OPTION}


def run(ctx: TaskContext) -> dict:
    return ocr_and_extract(ctx, "form")
