"""One settings object, read from the environment with defaults and validation."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def _int(env, name, default, lo=None, hi=None):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _float(env, name, default, lo=0.0):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < lo:
        raise ConfigError(f"{name} must be >= {lo}, got {value}")
    return value


def _bool(env, name, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be a boolean (1/0), got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Every knob of the service; see the README table for what each does."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    workers: int = 0  # 0 = ocr_concurrency + llm_concurrency + 2
    http_threads: int = 16
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
    pdf_dpi: int = 150
    file_retention: float = 7 * 86400.0
    task_retention: float = 30 * 86400.0
    janitor_interval: float = 60.0
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
        """Read DOCPROC_* and OPENAI_* variables; raise ConfigError on a bad value."""
        env = os.environ if env is None else env
        s = cls(
            host=env.get("DOCPROC_HOST", "127.0.0.1"),
            port=_int(env, "DOCPROC_PORT", 8000, 0, 65535),
            data_dir=Path(env.get("DOCPROC_DATA_DIR") or "data"),
            workers=_int(env, "DOCPROC_WORKERS", 0, 0, 256),
            http_threads=_int(env, "DOCPROC_HTTP_THREADS", 16, 1, 256),
            ocr_concurrency=_int(env, "DOCPROC_OCR_CONCURRENCY", 0, 0, 256),
            llm_concurrency=_int(env, "DOCPROC_LLM_CONCURRENCY", 4, 1, 256),
            queue_size=_int(env, "DOCPROC_QUEUE_SIZE", 10000, 1),
            max_pending=_int(env, "DOCPROC_MAX_PENDING", 5000, 1),
            max_pending_per_tenant=_int(env, "DOCPROC_MAX_PENDING_PER_TENANT", 0, 0),
            max_attempts=_int(env, "DOCPROC_MAX_ATTEMPTS", 3, 1, 100),
            max_resumes=_int(env, "DOCPROC_MAX_RESUMES", 3, 0, 100),
            retry_base_delay=_float(env, "DOCPROC_RETRY_BASE_DELAY", 2.0),
            retry_max_delay=_float(env, "DOCPROC_RETRY_MAX_DELAY", 300.0),
            task_timeout=_float(env, "DOCPROC_TASK_TIMEOUT", 600.0, 0.001),
            ocr_timeout=_float(env, "DOCPROC_OCR_TIMEOUT", 120.0, 0.001),
            llm_timeout=_float(env, "DOCPROC_LLM_TIMEOUT", 60.0, 0.001),
            shutdown_grace=_float(env, "DOCPROC_SHUTDOWN_GRACE", 30.0),
            max_upload_mb=_int(env, "DOCPROC_MAX_UPLOAD_MB", 50, 1),
            max_files=_int(env, "DOCPROC_MAX_FILES", 20, 1),
            max_batch_files=_int(env, "DOCPROC_MAX_BATCH_FILES", 200, 1),
            max_pages=_int(env, "DOCPROC_MAX_PAGES", 200, 1),
            max_pixels=_int(env, "DOCPROC_MAX_PIXELS", 89_000_000, 1),
            ocr_max_pixels=_int(env, "DOCPROC_OCR_MAX_PIXELS", 36_000_000, 1_000_000, 500_000_000),
            pdf_dpi=_int(env, "DOCPROC_PDF_DPI", 150, 50, 600),
            file_retention=_float(env, "DOCPROC_FILE_RETENTION", 7 * 86400.0),
            task_retention=_float(env, "DOCPROC_TASK_RETENTION", 30 * 86400.0),
            janitor_interval=_float(env, "DOCPROC_JANITOR_INTERVAL", 60.0, 0.01),
            rate_limit=_float(env, "DOCPROC_RATE_LIMIT", 20.0),
            rate_burst=_int(env, "DOCPROC_RATE_BURST", 100, 1),
            allow_anonymous=_bool(env, "DOCPROC_ALLOW_ANONYMOUS", False),
            allow_private_callbacks=_bool(env, "DOCPROC_ALLOW_PRIVATE_CALLBACKS", False),
            webhook_attempts=_int(env, "DOCPROC_WEBHOOK_ATTEMPTS", 5, 1, 20),
            webhook_backoff=_float(env, "DOCPROC_WEBHOOK_BACKOFF", 0.5),
            webhook_timeout=_float(env, "DOCPROC_WEBHOOK_TIMEOUT", 10.0, 0.001),
            sse_keepalive=_float(env, "DOCPROC_SSE_KEEPALIVE", 15.0, 0.01),
            sse_max_seconds=_float(env, "DOCPROC_SSE_MAX_SECONDS", 600.0, 0.01),
            log_format=env.get("DOCPROC_LOG_FORMAT", "text"),
            log_level=env.get("DOCPROC_LOG_LEVEL", "INFO").upper(),
            openai_api_key=env.get("OPENAI_API_KEY", ""),
            openai_base_url=env.get("OPENAI_BASE_URL", ""),
            llm_model=env.get("DOCPROC_LLM_MODEL", "gpt-4o-mini"),
            llm_json_mode=env.get("DOCPROC_LLM_JSON_MODE", "schema"),
        )
        if s.log_format not in ("text", "json"):
            raise ConfigError("DOCPROC_LOG_FORMAT must be 'text' or 'json'")
        if s.llm_json_mode not in ("schema", "json_object"):
            raise ConfigError("DOCPROC_LLM_JSON_MODE must be 'schema' or 'json_object'")
        return s

