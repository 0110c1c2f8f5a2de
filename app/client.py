"""A small HTTP client for a running docproc service, with exit codes scripts can rely on."""
from __future__ import annotations

import json
import mimetypes
import time
from pathlib import Path

import requests

# The exit codes of every client command; `docproc --help` repeats them.
OK, TASK_NOT_COMPLETED, USAGE, SERVER, NOT_FOUND, AUTH = 0, 1, 2, 3, 4, 5
TERMINAL = ("completed", "failed", "cancelled")
LONG_POLL = 25.0  # seconds the server may hold one GET ?wait=; below its 60 s cap


class ClientError(Exception):
    """A request that did not succeed, with the exit code it maps to."""

    def __init__(self, message: str, exit_code: int, status: int | None = None, body: dict | None = None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.status = status
        self.body = body


def exit_code_for(status: int) -> int:
    """HTTP status to exit code: 4xx input errors are usage errors, 5xx and throttling are the server's."""
    if status == 401:
        return AUTH
    if status == 404:
        return NOT_FOUND
    if status == 409:
        return TASK_NOT_COMPLETED
    if status in (429, 503) or status >= 500:
        return SERVER
    return USAGE


class Client:
    """The service's task API over requests: one session, bearer key, JSON in and out."""

    def __init__(self, url: str, key: str | None = None, *, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "docproc-cli"
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, path: str, *, timeout: float | None = None, **kwargs):
        """The decoded JSON body of a 2xx answer; ClientError for anything else."""
        try:
            r = self.session.request(method, self.url + path, timeout=timeout or self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise self._unreachable(method, path, exc) from None
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.ok and body is not None:
            return body
        self._raise(r, method, path, body)

    def _unreachable(self, method: str, path: str, exc: requests.RequestException) -> ClientError:
        if isinstance(exc, requests.Timeout):
            return ClientError(f"{method} {path}: {self.url} did not answer in time", SERVER)
        if isinstance(exc, requests.ConnectionError):
            return ClientError(f"cannot reach {self.url}: connection failed (is the service running? "
                               "set --url or DOCPROC_URL)", SERVER)
        return ClientError(f"{method} {path}: {exc}", SERVER)

    @staticmethod
    def _raise(r, method: str, path: str, body=None):
        """ClientError for an answer that is not a success (or a success that is not JSON)."""
        if body is None and not r.ok:
            try:
                body = r.json()
            except ValueError:
                body = None
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            message = f"{err.get('code')}: {err.get('message')}"
        elif r.ok:
            message = "the server answered with something other than JSON; is this a docproc URL?"
        else:
            message = (r.text or r.reason or "").strip()[:200]
        raise ClientError(f"HTTP {r.status_code} from {method} {path}: {message}",
                          exit_code_for(r.status_code) if not r.ok else SERVER, r.status_code, body)

    # -- endpoints --------------------------------------------------------------------------
    def submit(self, files: list[Path], task_type: str, *, priority: int | None, options: dict,
               together: bool) -> list[dict]:
        """Submit files: one task per file (a batch when more than one), or one task for all."""
        data = {"type": task_type, "options": json.dumps(options)}
        if priority is not None:
            data["priority"] = str(priority)
        handles = [open(f, "rb") for f in files]
        try:
            parts = [("file", (f.name, h, mimetypes.guess_type(f.name)[0] or "application/octet-stream"))
                     for f, h in zip(files, handles)]
            if together or len(files) == 1:
                return [self.request("POST", "/api/tasks", data=data, files=parts, timeout=300)]
            batch = self.request("POST", "/api/batches", data=data, files=parts, timeout=300)
        finally:
            for h in handles:
                h.close()
        return [self.task(task_id) for task_id in batch["task_ids"]]

    def task(self, task_id: str, wait: float = 0.0) -> dict:
        params = {"wait": f"{wait:g}"} if wait else None
        return self.request("GET", f"/api/tasks/{task_id}", params=params, timeout=wait + self.timeout)

    def list(self, **params) -> dict:
        return self.request("GET", "/api/tasks", params={k: v for k, v in params.items() if v is not None})

    def export(self, batch_id: str, fmt: str, out) -> int:
        """Write the batch's export (csv or jsonl) to the binary file `out` as it arrives; the bytes written."""
        path = f"/api/batches/{batch_id}/export"
        try:
            with self.session.get(self.url + path, params={"format": fmt}, timeout=self.timeout, stream=True) as r:
                if not r.ok:
                    self._raise(r, "GET", path)
                written = 0
                for chunk in r.iter_content(chunk_size=65536):
                    out.write(chunk)
                    written += len(chunk)
                return written
        except requests.RequestException as exc:
            raise self._unreachable("GET", path, exc) from None

    def cancel(self, task_id: str) -> dict:
        return self.request("DELETE", f"/api/tasks/{task_id}")

    def follow(self, task: dict, on_change=None, *, retries: int = 5) -> dict:
        """Long-poll the task until it ends, calling on_change(task) on every change seen."""
        failures = 0
        while task["status"] not in TERMINAL:
            try:
                latest = self.task(task["id"], wait=LONG_POLL)
            except ClientError as exc:
                # A restart or a throttled poll is worth a few retries; anything else is final.
                if exc.exit_code != SERVER or failures >= retries:
                    raise
                failures += 1
                time.sleep(min(2.0 * failures, 10.0))
                continue
            failures = 0
            if on_change and (latest["status"], latest["stage"], latest["progress"]) != (
                    task["status"], task["stage"], task["progress"]):
                on_change(latest)
            task = latest
        return task
