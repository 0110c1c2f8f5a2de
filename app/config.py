"""One settings object, read from the environment with defaults and validation."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def _int(name, raw, lo=None, hi=None):
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _float(name, raw, lo=0.0):
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value >= lo:  # also refuses nan
        raise ConfigError(f"{name} must be >= {lo}, got {value}")
    return value


def _bool(name, raw):
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be a boolean (1/0), got {raw!r}")


def _str(name, raw):
    return raw


def _path(name, raw):
    return Path(raw)


@dataclass(frozen=True)
class Settings:
    """Every knob of the service; see the README table for what each does."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    workers: int = 0  # 0 = ocr_concurrency + llm_concurrency + 2
    http_threads: int = 16
    http_idle_timeout: float = 5.0  # an idle connection (or one that sends nothing) is closed after this
    http_body_timeout: float = 60.0  # a request body must arrive within this
    ocr_concurrency: int = 0  # 0 = CPU count
    llm_concurrency: int = 4
    queue_size: int = 10000
    max_pending: int = 5000
    max_pending_per_tenant: int = 0  # 0 = max_pending
    max_attempts: int = 3
    max_resumes: int = 3
    retry_base_delay: float = 2.0
    retry_max_delay: float = 300.0
    task_timeout: float = 600.0
    ocr_timeout: float = 120.0
    llm_timeout: float = 60.0
    shutdown_grace: float = 30.0
    max_upload_mb: int = 50
    max_files: int = 20
    max_batch_files: int = 200
    max_pages: int = 200
    max_pixels: int = 89_000_000  # hard cap on one decoded image (Pillow's own bomb limit is 89.5 Mpx)
    ocr_max_pixels: int = 36_000_000  # larger pages are scaled down to this before OCR
    decoded_handoff_mb: int = 128  # embedded: images decoded at intake are held this far for OCR (0: decode again)
    pdf_dpi: int = 150
    file_retention: float = 7 * 86400.0
    task_retention: float = 30 * 86400.0
    janitor_interval: float = 60.0
    lease_seconds: float = 60.0  # a running task's holder renews it; past it the janitor takes the task back
    redispatch_after: float = 300.0  # a due task not picked up this long after it was queued is queued again
    db_busy_timeout: float = 10.0  # seconds a write waits for another process's lock on the SQLite file
    storage_retry_seconds: float = 30.0  # a worker rides out a storage fault this long before leaving it to leases
    database_url: str = ""  # postgresql://...: the distributed mode's database (empty: SQLite in data_dir)
    broker_url: str = ""  # redis://...: Celery's broker (empty: the in-process queue and worker threads)
    metrics_port: int = 0  # docproc worker: serve its /metrics on this port (0: none; the API serves its own)
    rate_limit: float = 20.0  # requests per second per key
    rate_burst: int = 100
    allow_anonymous: bool = False
    allow_private_callbacks: bool = False
    webhook_attempts: int = 5
    webhook_backoff: float = 0.5  # first retry after this many seconds, doubling each time
    webhook_timeout: float = 10.0
    sse_keepalive: float = 15.0
    sse_max_seconds: float = 600.0
    log_format: str = "text"
    log_level: str = "INFO"
    openai_api_key: str = ""
    openai_base_url: str = ""
    llm_model: str = "gpt-4o-mini"
    llm_json_mode: str = "schema"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "docproc.sqlite3"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def artifacts_dir(self) -> Path:
        """Per task: OCR text layers, the searchable PDF, page previews."""
        return self.data_dir / "tasks"

    @property
    def effective_ocr_concurrency(self) -> int:
        return self.ocr_concurrency or (os.cpu_count() or 1)

    @property
    def effective_workers(self) -> int:
        return self.workers or (self.effective_ocr_concurrency + self.llm_concurrency + 2)

    @property
    def effective_max_pending_per_tenant(self) -> int:
        return self.max_pending_per_tenant or self.max_pending

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def uses_llm(self) -> bool:
        return bool(self.openai_api_key)

    def with_overrides(self, **changes) -> "Settings":
        """A copy with some values changed (tests and the CLI use it)."""
        if "data_dir" in changes:
            changes["data_dir"] = Path(changes["data_dir"])
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env=None) -> "Settings":
        """Read DOCPROC_* and OPENAI_* variables; raise ConfigError on a bad value. Defaults are the fields'."""
        env = os.environ if env is None else env
        defaults = {f.name: f.default for f in fields(cls)}
        values = {}
        for name, variable, parse, bounds in _ENV:
            raw = env.get(variable)
            values[name] = defaults[name] if raw in (None, "") else parse(variable, raw, *bounds)
        s = cls(**values)
        s = s.with_overrides(log_level=s.log_level.upper())
        if s.log_format not in ("text", "json"):
            raise ConfigError("DOCPROC_LOG_FORMAT must be 'text' or 'json'")
        if s.llm_json_mode not in ("schema", "json_object"):
            raise ConfigError("DOCPROC_LLM_JSON_MODE must be 'schema' or 'json_object'")
        return s



# field, environment variable, parser, bounds: the one place a setting meets the environment
_ENV = [
    ("host", "DOCPROC_HOST", _str, ()),
    ("port", "DOCPROC_PORT", _int, (0, 65535)),
    ("data_dir", "DOCPROC_DATA_DIR", _path, ()),
    ("workers", "DOCPROC_WORKERS", _int, (0, 256)),
    ("http_threads", "DOCPROC_HTTP_THREADS", _int, (1, 256)),
    ("http_idle_timeout", "DOCPROC_HTTP_IDLE_TIMEOUT", _float, (0.1,)),
    ("http_body_timeout", "DOCPROC_HTTP_BODY_TIMEOUT", _float, (1.0,)),
    ("ocr_concurrency", "DOCPROC_OCR_CONCURRENCY", _int, (0, 256)),
    ("llm_concurrency", "DOCPROC_LLM_CONCURRENCY", _int, (1, 256)),
    ("queue_size", "DOCPROC_QUEUE_SIZE", _int, (1,)),
    ("max_pending", "DOCPROC_MAX_PENDING", _int, (1,)),
    ("max_pending_per_tenant", "DOCPROC_MAX_PENDING_PER_TENANT", _int, (0,)),
    ("max_attempts", "DOCPROC_MAX_ATTEMPTS", _int, (1, 100)),
    ("max_resumes", "DOCPROC_MAX_RESUMES", _int, (0, 100)),
    ("retry_base_delay", "DOCPROC_RETRY_BASE_DELAY", _float, ()),
    ("retry_max_delay", "DOCPROC_RETRY_MAX_DELAY", _float, ()),
    ("task_timeout", "DOCPROC_TASK_TIMEOUT", _float, (0.001,)),
    ("ocr_timeout", "DOCPROC_OCR_TIMEOUT", _float, (0.001,)),
    ("llm_timeout", "DOCPROC_LLM_TIMEOUT", _float, (0.001,)),
    ("shutdown_grace", "DOCPROC_SHUTDOWN_GRACE", _float, ()),
    ("max_upload_mb", "DOCPROC_MAX_UPLOAD_MB", _int, (1,)),
    ("max_files", "DOCPROC_MAX_FILES", _int, (1,)),
    ("max_batch_files", "DOCPROC_MAX_BATCH_FILES", _int, (1,)),
    ("max_pages", "DOCPROC_MAX_PAGES", _int, (1,)),
    ("max_pixels", "DOCPROC_MAX_PIXELS", _int, (1,)),
    ("ocr_max_pixels", "DOCPROC_OCR_MAX_PIXELS", _int, (1_000_000, 500_000_000)),
    ("decoded_handoff_mb", "DOCPROC_DECODED_HANDOFF_MB", _int, (0, 65536)),
    ("pdf_dpi", "DOCPROC_PDF_DPI", _int, (50, 600)),
    ("file_retention", "DOCPROC_FILE_RETENTION", _float, ()),
    ("task_retention", "DOCPROC_TASK_RETENTION", _float, ()),
    ("janitor_interval", "DOCPROC_JANITOR_INTERVAL", _float, (0.01,)),
    ("lease_seconds", "DOCPROC_LEASE_SECONDS", _float, (1.0,)),
    ("redispatch_after", "DOCPROC_REDISPATCH_AFTER", _float, ()),
    ("db_busy_timeout", "DOCPROC_DB_BUSY_TIMEOUT", _float, (0.001,)),
    ("storage_retry_seconds", "DOCPROC_STORAGE_RETRY_SECONDS", _float, ()),
    ("database_url", "DOCPROC_DATABASE_URL", _str, ()),
    ("broker_url", "DOCPROC_BROKER_URL", _str, ()),
    ("metrics_port", "DOCPROC_METRICS_PORT", _int, (0, 65535)),
    ("rate_limit", "DOCPROC_RATE_LIMIT", _float, ()),
    ("rate_burst", "DOCPROC_RATE_BURST", _int, (1,)),
    ("allow_anonymous", "DOCPROC_ALLOW_ANONYMOUS", _bool, ()),
    ("allow_private_callbacks", "DOCPROC_ALLOW_PRIVATE_CALLBACKS", _bool, ()),
    ("webhook_attempts", "DOCPROC_WEBHOOK_ATTEMPTS", _int, (1, 20)),
    ("webhook_backoff", "DOCPROC_WEBHOOK_BACKOFF", _float, ()),
    ("webhook_timeout", "DOCPROC_WEBHOOK_TIMEOUT", _float, (0.001,)),
    ("sse_keepalive", "DOCPROC_SSE_KEEPALIVE", _float, (0.01,)),
    ("sse_max_seconds", "DOCPROC_SSE_MAX_SECONDS", _float, (0.01,)),
    ("log_format", "DOCPROC_LOG_FORMAT", _str, ()),
    ("log_level", "DOCPROC_LOG_LEVEL", _str, ()),
    ("openai_api_key", "OPENAI_API_KEY", _str, ()),
    ("openai_base_url", "OPENAI_BASE_URL", _str, ()),
    ("llm_model", "DOCPROC_LLM_MODEL", _str, ()),
    ("llm_json_mode", "DOCPROC_LLM_JSON_MODE", _str, ()),
]
