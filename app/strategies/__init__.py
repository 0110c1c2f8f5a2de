"""The registry of task types: adding a type is one module and one line here."""
from types import ModuleType

from . import document, form, form_filling

STRATEGIES: dict[str, ModuleType] = {m.TYPE: m for m in (document, form, form_filling)}

# Options every type takes, with what they mean (intake rejects anything else).
COMMON_OPTIONS = {
    "lang": "tesseract language(s), e.g. 'eng' or 'eng+deu' (default 'eng')",
    "no_cache": "true: run again even if an identical task already completed",
    "callback_url": "http(s) URL that receives the final task object as a signed POST",
    "words": "true: each page of the result also lists its words with boxes and confidences",
}


def allowed_options(task_type: str) -> dict[str, str]:
    return {**COMMON_OPTIONS, **getattr(STRATEGIES[task_type], "OPTIONS", {})}


def required_options(task_type: str) -> tuple[str, ...]:
    return getattr(STRATEGIES[task_type], "REQUIRED", ())
