"""The OpenAPI 3 document of the HTTP API, built from the code it describes (types, options, schemas)."""
from __future__ import annotations

import copy
from functools import lru_cache

from .api.tasks import MAX_WAIT
from .config import Settings
from .exports import BASE_COLUMNS, FIELD_PREFIX, FORMATS, KV_COLUMNS
from .extract import schemas as extract_schemas
from .models import TASK_TYPES, TaskStatus
from .extract import fields as extract_fields
from .strategies import allowed_options, required_options

OPENAPI_VERSION = "3.0.3"
API_VERSION = "0.1.0"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}

# Which error codes each status can carry, per operation; every BadInput in app/ must be listed here.
UNAUTHORIZED = ("unauthorized",)
RATE_LIMITED = ("rate_limited",)
SUBMIT_400 = ("bad_request", "invalid_json", "malformed_multipart", "invalid_options", "missing_field", "unknown_type",
              "invalid_priority", "invalid_images", "invalid_base64", "unknown_option", "missing_option",
              "unsupported_language", "invalid_callback_url", "callback_url_not_allowed", "invalid_library", "invalid_fields",
              "unknown_library_task", "library_task_not_usable", "no_file", "empty_file", "corrupt_image", "corrupt_pdf",
              "pdf_password_protected", "image_too_large", "image_too_small")
SUBMIT_413 = ("payload_too_large", "too_many_files", "too_many_pages", "too_many_parts", "field_too_large",
              "part_headers_too_large")
SUBMIT_415 = ("unsupported_content_type", "unsupported_media_type")
SUBMIT_429 = ("too_many_pending", *RATE_LIMITED)
SUBMIT_503 = ("shutting_down", "overloaded", "storage_busy")


# -- schemas ------------------------------------------------------------------------------
def _error_schema(codes: tuple[str, ...] | None = None) -> dict:
    code = {"type": "string", "description": "stable, machine-readable reason"}
    if codes:
        code["enum"] = sorted(set(codes))
    return {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": code, "message": {"type": "string", "description": "for people"},
                           "error_id": {"type": "string", "description": "reference of an internal error in the logs"}},
        }},
    }


def _extraction(kind: str) -> dict:
    # The LLM reply schemas are strict (additionalProperties false); results add fields to them.
    schema = copy.deepcopy(extract_schemas.SCHEMAS[kind])
    schema.pop("additionalProperties", None)
    return schema


def _result(kind: str, description: str) -> dict:
    schema = _extraction(kind)
    schema["description"] = description
    schema["properties"].update({
        "text": {"type": "string", "description": "the OCR text of every page, joined by blank lines"},
        "pages": {"type": "array", "items": _ref("Page")},
        "extractor": {"type": "string", "description": "'local' or 'llm:<model>'"},
        "usage": _ref("Usage"),
        "cached": {"type": "boolean", "description": "true: copied from an identical completed task"},
    })
    if kind != "fill":
        schema["properties"].update({
            "provenance": {"type": "object", "description": "kv key -> where its value was read",
                           "additionalProperties": {"type": "object", "required": ["page", "box"], "properties": {
                               "page": _INT, "box": _ref("Box")}}},
            "fields_requested": {"type": "object", "description": "with option fields: each requested name -> "
                                 "its value normalised by type, or null when the document does not hold it",
                                 "additionalProperties": {"type": "object", "required": ["value", "type", "page", "box"],
                                                          "properties": {
                                     "value": {"type": ["string", "number", "boolean", "null"]},
                                     "type": {"type": "string", "enum": list(extract_fields.TYPES)},
                                     "currency": {"type": ["string", "null"]},
                                     "page": {"type": ["integer", "null"]},
                                     "box": {"oneOf": [_ref("Box"), {"type": "null"}]}}}},
        })
    schema["required"] = [*schema["required"], "text", "pages", "extractor"]
    return schema


def _fill_result() -> dict:
    schema = _result("fill", "Result of a `form_filling` task.")
    schema["properties"]["fields"] = {"type": "array", "items": _STR, "description": "the blank fields found on the form"}
    schema["required"].append("fields")
    return schema


def _options(task_type: str) -> dict:
    props = {
        "lang": {"type": "string", "example": "eng", "pattern": r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$"},
        "no_cache": {"type": "boolean"},
        "words": {"type": "boolean"},
        "callback_url": {"type": "string", "format": "uri", "maxLength": 2048, "example": "https://example.com/hook"},
        "fields": {"type": "array", "minItems": 1, "maxItems": extract_fields.MAX_FIELDS, "items": {"oneOf": [
            {"type": "string", "minLength": 1, "maxLength": extract_fields.MAX_NAME_CHARS},
            {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": extract_fields.MAX_NAME_CHARS},
                "type": {"type": "string", "enum": list(extract_fields.TYPES)},
                "description": {"type": "string", "maxLength": extract_fields.MAX_DESCRIPTION_CHARS}}},
        ]}},
        "library": {"type": "array", "minItems": 1, "items": {"oneOf": [
            {"type": "string", "format": "uuid", "description": "a completed document or form task of this tenant"},
            {"type": "object", "required": ["kv"], "additionalProperties": False,
             "properties": {"kv": {"type": "object", "additionalProperties": {"type": "string"}}}},
        ]}},
    }
    allowed = allowed_options(task_type)
    out = {"type": "object", "additionalProperties": False,
           "properties": {k: {**props[k], "description": allowed[k]} for k in allowed}}
    if required_options(task_type):
        out["required"] = list(required_options(task_type))
    return out


def _schemas() -> dict:
    status = {"type": "string", "enum": [s.value for s in TaskStatus]}
    return {
        "Error": _error_schema(),
        "TaskType": {"type": "string", "enum": list(TASK_TYPES)},
        "TaskStatus": status,
        "Box": {"type": "array", "items": _INT, "minItems": 4, "maxItems": 4,
                "description": "[left, top, right, bottom] in pixels of the page image as read (origin top left)"},
        "Line": {"type": "object", "required": ["text", "box", "confidence"], "properties": {
            "text": _STR, "box": _ref("Box"), "confidence": {"type": "number"}}},
        "Word": {"type": "object", "required": ["text", "box", "confidence", "line"], "properties": {
            "text": _STR, "box": _ref("Box"), "confidence": {"type": "number"},
            "line": {"type": "integer", "minimum": 0, "description": "index into the page's lines"}}},
        "Page": {"type": "object", "required": ["page", "text", "confidence", "rotation", "deskew", "source", "width",
                                                "height", "lines"], "properties": {
            "page": {"type": "integer", "minimum": 1}, "text": _STR,
            "confidence": {"type": "number", "description": "mean word confidence, 0..100"},
            "rotation": {"type": "integer", "description": "degrees the page was turned clockwise before OCR"},
            "deskew": {"type": "number", "description": "degrees of small-angle correction, counter-clockwise positive"},
            "source": {"type": "string", "enum": ["ocr", "pdf_text"],
                       "description": "where the text came from: tesseract, or the PDF's own text layer"},
            "width": _INT, "height": _INT,
            "lines": {"type": "array", "items": _ref("Line")},
            "words": {"type": "array", "items": _ref("Word"),
                      "description": "only with options.words"},
            "form_fields": {"type": "array", "description": "filled fields of a PDF form (AcroForm), read from the form",
                            "items": {"type": "object", "required": ["name", "value"], "properties": {
                                "name": _STR, "value": _STR, "box": _nullable({"type": "array", "items": _INT})}}}}},
        "Usage": {"type": "object", "description": "LLM tokens spent (absent with the local extractor)", "properties": {
            "prompt_tokens": _INT, "completion_tokens": _INT, "total_tokens": _INT, "model": _nullable(_STR)}},
        "DocumentResult": _result("document", "Result of a `document` task."),
        "FormResult": _result("form", "Result of a `form` task: a document result plus the blank fields."),
        "FormFillingResult": _fill_result(),
        "TaskErrorEntry": {"type": "object", "required": ["at", "stage", "message"], "properties": {
            "at": _STR, "stage": _nullable(_STR), "message": _STR, "attempt": _INT}},
        "WebhookAttempt": {"type": "object", "required": ["attempt", "at"], "properties": {
            "attempt": _INT, "status_code": _nullable(_INT), "error": _nullable(_STR), "delivered": {"type": "boolean"},
            "at": _TIME}},
        "Task": {
            "type": "object",
            "required": ["id", "type", "status", "progress", "stage", "priority", "created_at", "updated_at",
                         "started_at", "completed_at", "attempts", "resumes", "cancel_requested", "batch_id",
                         "errors", "result"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "type": _ref("TaskType"),
                "status": _ref("TaskStatus"),
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
                "stage": {"type": "string", "description": "e.g. queued, starting, 'ocr 2/5 pages', extract, fill, done"},
                "priority": {"type": "integer", "minimum": 0, "maximum": 9},
                "created_at": _TIME, "updated_at": _TIME,
                "started_at": _nullable(_TIME), "completed_at": _nullable(_TIME),
                "attempts": _INT, "resumes": _INT,
                "cancel_requested": {"type": "boolean"},
                "batch_id": _nullable({"type": "string", "format": "uuid"}),
                "errors": {"type": "array", "items": _ref("TaskErrorEntry")},
                "result": {"nullable": True, "description": "set once completed; its shape follows the task type",
                           "anyOf": [_ref("DocumentResult"), _ref("FormResult"), _ref("FormFillingResult")]},
                "webhooks": {"type": "array", "items": _ref("WebhookAttempt"),
                             "description": "delivery attempts of options.callback_url (only when one was given)"},
            },
        },
        "TaskEvent": {"type": "object", "description": "one server-sent event", "required": ["event", "data"],
                      "properties": {"event": {"type": "string", "enum": ["task", "end"]},
                                     "data": {"type": "string", "description": "JSON: a Task (event `task`) or "
                                              "{id, status, reason} (event `end`)"},
                                     "retry": {"type": "integer", "description": "reconnection delay in ms"}}},
        "TaskList": {"type": "object", "required": ["tasks", "next"], "properties": {
            "tasks": {"type": "array", "items": _ref("Task")},
            "next": _nullable({"type": "string", "description": "pass as ?cursor= for the next page"})}},
        "BatchCreated": {"type": "object", "required": ["id", "type", "task_ids"], "properties": {
            "id": {"type": "string", "format": "uuid"}, "type": _ref("TaskType"),
            "task_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}}}},
        "Batch": {"type": "object",
                  "required": ["id", "type", "created_at", "total", "counts", "done", "progress", "tasks"],
                  "properties": {
                      "id": {"type": "string", "format": "uuid"}, "type": _ref("TaskType"), "created_at": _TIME,
                      "total": _INT, "done": {"type": "boolean"}, "progress": {"type": "number", "minimum": 0, "maximum": 1},
                      "counts": {"type": "object", "additionalProperties": _INT,
                                 "properties": {s.value: _INT for s in TaskStatus}},
                      "tasks": {"type": "array", "items": _ref("Task")}}},
        "Health": {"type": "object",
                   "required": ["status", "accepting", "workers", "queue_depth", "tesseract", "extractor"],
                   "properties": {
                       "status": {"type": "string", "enum": ["ok", "degraded"]}, "accepting": {"type": "boolean"},
                       "workers": {"type": "object", "properties": {"alive": _INT, "expected": _INT}},
                       "queue_depth": _INT, "tesseract": _nullable(_STR), "extractor": _STR}},
        "Stats": {"type": "object", "required": ["tasks", "workers", "queue_depth", "uptime_seconds"], "properties": {
            "tasks": {"type": "object", "description": "type -> status -> count",
                      "additionalProperties": {"type": "object", "additionalProperties": _INT}},
            "workers": {"type": "object", "properties": {"total": _INT, "busy": _INT, "idle": _INT}},
            "ocr": {"type": "object", "properties": {"slots": _INT, "busy": _INT, "pages_waiting": _INT}},
            "queue_depth": _INT, "mean_wait_seconds": _nullable(_NUM), "mean_run_seconds": _nullable(_NUM),
            "uptime_seconds": _NUM}},
        **{f"Options_{t}": _options(t) for t in TASK_TYPES},
    }


# -- requests and responses ------------------------------------------------------------------
def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _error(description: str, codes: tuple[str, ...], headers: dict | None = None) -> dict:
    out = {"description": f"{description} (codes: {', '.join(sorted(set(codes)))})", "content": _json(_error_schema(codes))}
    if headers:
        out["headers"] = headers
    return out


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}
_LOCATION = {"Location": {"description": "where to read what was created", "required": True, "schema": _STR}}


def _common(extra_401: bool = True) -> dict:
    out = {"429": _error("too many requests for this key", RATE_LIMITED, _RETRY_AFTER),
           "500": _error("unexpected error; the body names a reference found in the logs", ("internal_error",))}
    if extra_401:
        out["401"] = _error("missing, unknown or revoked API key", UNAUTHORIZED)
    return out


def _waiting(code: str, what: str) -> dict:
    """429/503 of a request that would wait: this tenant's share or the service's share of waiting threads."""
    return {"429": _error(f"this tenant has its share of {what} open, or too many requests", (code, *RATE_LIMITED),
                          _RETRY_AFTER),
            "503": _error(f"the service has its share of {what} open; poll instead", (code,), _RETRY_AFTER)}


def _submit_body(fixed_type: str | None, max_files: int) -> dict:
    options_ref = _ref(f"Options_{fixed_type}") if fixed_type else {
        "type": "object", "description": "options of the chosen type: " + "; ".join(
            f"{t}: {', '.join(allowed_options(t))}" for t in TASK_TYPES)}
    json_props = {
        "priority": {"type": "integer", "minimum": 0, "maximum": 9, "default": 5, "description": "9 runs first"},
        "options": options_ref,
        "images": {"type": "array", "minItems": 1, "maxItems": max_files, "items": {"type": "string", "format": "byte"},
                   "description": "files as base64 (a data: URL prefix is accepted)"},
    }
    form_props = {
        "priority": {"type": "string", "pattern": "^[0-9]$", "default": "5"},
        "options": {"type": "string", "minLength": 2,
                    "description": "the options object as JSON text"},
        "file": {"type": "array", "minItems": 1, "maxItems": max_files, "items": {"type": "string", "format": "binary"},
                 "description": "one or more files (PNG, JPEG, TIFF, WebP, BMP, PDF); any field name is accepted"},
    }
    json_schema = {"type": "object", "required": ["images"], "properties": json_props}
    form_schema = {"type": "object", "required": ["file"], "properties": form_props}
    if fixed_type is None:
        json_props["type"] = _ref("TaskType")
        form_props["type"] = _ref("TaskType")
        json_schema["required"].insert(0, "type")
        form_schema["required"].insert(0, "type")
    return {"required": True, "content": {"multipart/form-data": {"schema": form_schema},
                                          "application/json": {"schema": json_schema}}}


def _submit_responses(created: dict, description: str) -> dict:
    return {
        "202": {"description": description, "headers": _LOCATION, "content": _json(created)},
        "400": _error("the request or one of its files is not acceptable", SUBMIT_400),
        "413": _error("too large: body, number of files or pages", SUBMIT_413),
        "415": _error("neither multipart/form-data nor application/json", SUBMIT_415),
        "429": _error("this tenant has too many unfinished tasks, or too many requests", SUBMIT_429, _RETRY_AFTER),
        "503": _error("the service is shutting down or overloaded", SUBMIT_503, _RETRY_AFTER),
        "507": _error("the service has no room to store this now", ("insufficient_storage",), _RETRY_AFTER),
        **{k: v for k, v in _common().items() if k not in ("429",)},
    }


def _uuid_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "format": "uuid"}}


_TASK_ID = _uuid_param("task_id", "the task's id")
_WAIT = {"name": "wait", "in": "query", "required": False,
         "description": "long-poll: answer as soon as the task changes or finishes, or after this many seconds "
                        f"(max {MAX_WAIT:g})",
         "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT}}
_NOT_FOUND = _error("no such task for this tenant", ("not_found",))


_DOCUMENT_ERRORS = {
    "409": _error("the task has not completed, or an OCR page has no text layer",
                  ("task_not_completed", "pdf_not_available")),
    "410": _error("the task's files were removed by retention", ("files_expired",)),
}


def _get_task(summary: str, operation_id: str) -> dict:
    return {"tags": ["tasks"], "summary": summary, "operationId": operation_id, "parameters": [_TASK_ID, _WAIT],
            "responses": {"200": {"description": "the task", "content": _json(_ref("Task"))},
                          "400": _error("bad wait value", ("invalid_wait",)), "404": _NOT_FOUND, **_common(),
                          **_waiting("too_many_long_polls", "long-polls")}}


def _paths(max_files: int, max_batch_files: int) -> dict:
    paths = {
        "/api/tasks": {
            "post": {"tags": ["tasks"], "summary": "Submit a task (one or more files processed together)",
                     "operationId": "createTask", "requestBody": _submit_body(None, max_files),
                     "responses": _submit_responses(_ref("Task"), "accepted; poll the Location, or stream its events")},
            "get": {"tags": ["tasks"], "summary": "List this tenant's tasks, newest first", "operationId": "listTasks",
                    "parameters": [
                        {"name": "status", "in": "query", "description": "only tasks with this status (empty: any)",
                         "schema": {"type": "string", "enum": [*(x.value for x in TaskStatus), ""]}},
                        {"name": "type", "in": "query", "description": "only tasks of this type (empty: any)",
                         "schema": {"type": "string", "enum": [*TASK_TYPES, ""]}},
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                        {"name": "cursor", "in": "query", "description": "the `next` value of the previous page",
                         "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}],
                    "responses": {"200": {"description": "one page of tasks", "content": _json(_ref("TaskList"))},
                                  "400": _error("bad filter",
                                                ("invalid_status", "unknown_type", "invalid_limit", "invalid_cursor")),
                                  **_common()}},
        },
        "/api/tasks/{task_id}": {
            "get": _get_task("Read a task (optionally long-polling with ?wait=)", "getTask"),
            "delete": {"tags": ["tasks"], "summary": "Cancel a task", "operationId": "cancelTask", "parameters": [_TASK_ID],
                       "responses": {
                           "200": {"description": "was pending: cancelled now", "content": _json(_ref("Task"))},
                           "202": {"description": "is running: stops at its next stage boundary", "content": _json(_ref("Task"))},
                           "404": _NOT_FOUND, "409": _error("the task already finished", ("task_finished",)), **_common()}},
        },
        "/api/tasks/{task_id}/pdf": {"get": {
            "tags": ["tasks"], "summary": "The document as a searchable PDF", "operationId": "taskPdf",
            "description": "Each page read by OCR is its page image (as read: turned and levelled) under an invisible "
                           "text layer written by the same tesseract run as the task's text; a page read from its "
                           "own text layer is the original PDF page. A born-digital PDF comes back as it was sent.",
            "parameters": [_TASK_ID],
            "responses": {"200": {"description": "a PDF", "content": {"application/pdf": {
                              "schema": {"type": "string", "format": "binary"}}}},
                          "404": _NOT_FOUND, **_DOCUMENT_ERRORS, **_common()}}},
        "/api/tasks/{task_id}/pages/{number}": {"get": {
            "tags": ["tasks"], "summary": "A page as PNG: the image the OCR read", "operationId": "taskPage",
            "description": "After rotation and deskew, scaled to `width` pixels (default 1000): a box of the result "
                           "maps to the preview by multiplying with width / page width.",
            "parameters": [_TASK_ID,
                           {"name": "number", "in": "path", "required": True, "description": "1-based page number",
                            "schema": {"type": "integer", "minimum": 1}},
                           {"name": "width", "in": "query", "required": False, "description": "pixels",
                            "schema": {"type": "integer", "minimum": 100, "maximum": 2000, "default": 1000}}],
            "responses": {"200": {"description": "a PNG image", "content": {"image/png": {
                              "schema": {"type": "string", "format": "binary"}}}},
                          "400": _error("bad width", ("invalid_width",)),
                          "404": _error("no such task for this tenant, or no such page", ("not_found", "page_not_found")),
                          **_DOCUMENT_ERRORS, **_common()}}},
        "/api/task_status/{task_id}": {"get": _get_task("Read a task (alias of /api/tasks/{task_id})", "getTaskStatus")},
        "/api/tasks/{task_id}/events": {"get": {
            "tags": ["tasks"], "summary": "Server-sent events of a task until it ends", "operationId": "taskEvents",
            "description": "`event: task` with the task object as data, first at once and then on every status or "
                           "progress change; comment lines as keep-alives; `event: end` (data: {id, status, reason}) "
                           "when the task ended (reason `finished`), the stream's time ran out (`timeout`: reconnect), "
                           "the service is stopping (`shutdown`) or the task was deleted (`gone`); then the stream "
                           "closes. Clients should stop on `end` rather than let EventSource reconnect.",
            "parameters": [_TASK_ID],
            "responses": {"200": {"description": "an event stream",
                                  "content": {"text/event-stream": {"schema": _ref("TaskEvent")}}},
                          "404": _NOT_FOUND,
                          **_common(), **_waiting("too_many_streams", "event streams")}}},
        "/api/batches": {"post": {
            "tags": ["batches"], "summary": "Submit many files, one task each", "operationId": "createBatch",
            "requestBody": _submit_body(None, max_batch_files),
            "responses": _submit_responses(_ref("BatchCreated"), "accepted; read the batch at Location")}},
        "/api/batches/{batch_id}": {"get": {
            "tags": ["batches"], "summary": "A batch with its tasks and counts", "operationId": "getBatch",
            "parameters": [_uuid_param("batch_id", "the batch's id")],
            "responses": {"200": {"description": "the batch", "content": _json(_ref("Batch"))},
                          "404": _error("no such batch for this tenant", ("not_found",)), **_common()}}},
        "/api/batches/{batch_id}/export": {"get": {
            "tags": ["batches"], "summary": "A batch as a table: one row per task (CSV or JSON Lines)",
            "operationId": "exportBatch",
            "description": "Rows in the batch's order, one per task, whatever its status. CSV (RFC 4180): a header "
                           f"row, CRLF line ends, UTF-8 without BOM; columns {', '.join(BASE_COLUMNS)}, then every "
                           f"canonical key ({', '.join(KV_COLUMNS)}; empty when the task lacks it), then "
                           f"`{FIELD_PREFIX}<name>` per requested field (amounts: two decimals, and "
                           f"`{FIELD_PREFIX}<name>:currency`). A cell that starts with = + - @, a tab or CR is "
                           "prefixed with ' so that spreadsheets show it rather than run it (plain numbers such as "
                           "-9.32 excepted). JSON Lines: one object per task, `{task_id, file, status, error, kv: "
                           "{canonical key: value or null}, fields: {name: {value, type, currency (amounts)}}}`.",
            "parameters": [_uuid_param("batch_id", "the batch's id"),
                           {"name": "format", "in": "query", "required": False, "description": "csv or jsonl",
                            "schema": {"type": "string", "enum": list(FORMATS), "default": "csv"}}],
            "responses": {"200": {"description": "the export, streamed; Content-Disposition names "
                                                 "batch-<id>.csv or batch-<id>.jsonl",
                                  "headers": {"Content-Disposition": {"schema": _STR}},
                                  "content": {"text/csv": {"schema": {"type": "string"}},
                                              "application/x-ndjson": {"schema": {"type": "string"}}}},
                          "400": _error("format is not csv or jsonl", ("invalid_format",)),
                          "404": _error("no such batch for this tenant", ("not_found",)), **_common()}}},
        "/api/health": {"get": {
            "tags": ["service"], "summary": "Liveness and readiness", "operationId": "health", "security": [],
            "responses": {"200": {"description": "ready", "content": _json(_ref("Health"))},
                          "503": {"description": "degraded: workers dead, tesseract missing or shutting down",
                                  "content": _json(_ref("Health"))}, **_common(False)}}},
        "/api/stats": {"get": {
            "tags": ["service"], "summary": "Counts and timings for this tenant", "operationId": "stats",
            "responses": {"200": {"description": "statistics", "content": _json(_ref("Stats"))}, **_common()}}},
        "/api/openapi.json": {"get": {
            "tags": ["service"], "summary": "This document", "operationId": "openapi", "security": [],
            "responses": {"200": {"description": "OpenAPI 3 document", "content": _json({"type": "object"})}}}},
        "/api/docs": {"get": {
            "tags": ["service"], "summary": "Interactive documentation (Swagger UI)", "operationId": "docs", "security": [],
            "responses": {"200": {"description": "an HTML page", "content": {"text/html": {"schema": _STR}}}}}},
        "/api/docs/assets/{filename}": {"get": {
            "tags": ["service"], "summary": "Files of the documentation page", "operationId": "docsAsset", "security": [],
            "parameters": [{"name": "filename", "in": "path", "required": True, "schema": _STR}],
            "responses": {"200": {"description": "a JavaScript, CSS or image file",
                                  "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                          "404": _error("no such file", ("not_found",))}}},
        "/metrics": {"get": {
            "tags": ["service"], "summary": "Prometheus metrics", "operationId": "metrics", "security": [],
            "responses": {"200": {"description": "Prometheus text exposition format",
                                  "content": {"text/plain": {"schema": _STR}}}}}},
    }
    for t in TASK_TYPES:
        paths[f"/api/process_{t}"] = {"post": {
            "tags": ["tasks"], "summary": f"Submit a `{t}` task (same as POST /api/tasks with type={t})",
            "operationId": f"process_{t}", "requestBody": _submit_body(t, max_files),
            "responses": _submit_responses(_ref("Task"), "accepted")}}
    return paths


@lru_cache(maxsize=4)
def build_spec(max_files: int = Settings.max_files, max_batch_files: int = Settings.max_batch_files) -> dict:
    """The whole document, from the registry of types, the extraction schemas and the file limits in force."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "docproc",
            "version": API_VERSION,
            "description": "OCR plus structured extraction over HTTP. Submit files, get a task id at once, then "
                           "poll, long-poll or stream the task. Errors are `{\"error\": {\"code\", \"message\"}}`.\n\n"
                           "Webhooks: `options.callback_url` receives a POST of the final task object with headers "
                           "`X-Docproc-Signature: sha256=<hex HMAC-SHA256 of the raw body under the tenant's webhook "
                           "secret>`, `X-Docproc-Task: <task id>` and `X-Docproc-Timestamp: <Unix seconds>`.",
        },
        "tags": [{"name": "tasks"}, {"name": "batches"}, {"name": "service"}],
        "paths": _paths(max_files, max_batch_files),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
                "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearerAuth": []}, {"apiKeyAuth": []}],
    }
