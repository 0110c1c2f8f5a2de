"""`form_filling`: read a blank form's fields, fill them from the tenant's library."""
from .base import TaskContext, page_summary

TYPE = "form_filling"
OPTIONS = {"library": "list of completed document/form task ids and/or {\"kv\": {...}} objects (required)"}
REQUIRED = ("library",)


def run(ctx: TaskContext) -> dict:
    library = ctx.library()
    pages = ctx.ocr_pages()
    text, records = page_summary(pages, ctx.options)
    form = ctx.extract("form", pages)
    fields = form.data.get("fields", [])
    filling = ctx.fill(fields, text, library)
    usage = _sum_usage(form.usage, filling.usage)
    return {"filled": filling.data["filled"], "missing": filling.data["missing"], "fields": fields,
            "text": text, "pages": records, "extractor": filling.extractor,
            **({"usage": usage} if usage else {})}


def _sum_usage(a: dict, b: dict) -> dict:
    if not a and not b:
        return {}
    out = {k: (a.get(k, 0) or 0) + (b.get(k, 0) or 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    out["model"] = b.get("model") or a.get("model")
    return out
