"""The `docproc` command: run the service, manage API keys, and talk to a running service."""
from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import contextmanager
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from . import auth
from .extract.fields import TYPES as FIELD_TYPES
from .models import TASK_TYPES, is_uuid

EXIT_CODES = """\b
Exit codes:
  0  success (with --wait: every task completed)
  1  a task failed or was cancelled (or cannot be cancelled: already finished)
  2  usage error, or the server rejected the input (HTTP 400/413/415)
  3  server or connection error (unreachable, HTTP 5xx, 429, 503)
  4  not found (unknown task or batch id, or key prefix)
  5  authentication error (HTTP 401: missing or invalid API key)
"""

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Exit(click.ClickException):
    """An error message on stderr and a documented exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@click.group(context_settings=CONTEXT, epilog=EXIT_CODES)
def main():
    """docproc: document processing service and its client.

    Client commands (submit, status, list, cancel) write JSON on stdout (one object per
    line unless stdout is a terminal) and progress and messages on stderr; export writes
    the batch's CSV or JSON Lines.
    """


@main.command()
def serve():
    """Run the service (settings from DOCPROC_* environment variables)."""
    from .server import serve as run

    sys.exit(run())


@main.command()
@click.option("--queues", "-Q", default="ocr,extract", show_default=True,
              help="Queues to consume: ocr (one tesseract per core), extract (extraction and webhooks), or both.")
@click.option("--concurrency", "-c", type=click.IntRange(0, 256), default=0,
              help="Tasks run at once (Celery threads); 0 = DOCPROC_WORKERS' default.")
def worker(queues, concurrency):
    """Run a worker of the distributed mode (needs DOCPROC_DATABASE_URL and DOCPROC_BROKER_URL)."""
    from .config import ConfigError

    try:
        from .engine.celery_worker import parse_queues, run_worker
    except ImportError as exc:
        raise Exit(f"{exc.name} is not installed: pip install 'docproc[scale]'", 2) from None

    try:
        names = parse_queues(queues)
    except ConfigError as exc:
        raise Exit(str(exc), 2) from None
    sys.exit(run_worker(names, concurrency))


# -- API keys (local: open the database directly) ---------------------------------------------
@contextmanager
def _database():
    """The service's database under DOCPROC_DATA_DIR, closed when the block ends."""
    from .config import ConfigError, Settings
    from .engine import open_store

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise Exit(str(exc), 2) from None
    db = open_store(settings)
    try:
        yield db
    finally:
        db.close_all()


def _iso(value):
    from .models import iso

    return iso(value) if isinstance(value, (int, float)) else value


@main.group(context_settings=CONTEXT, epilog=EXIT_CODES)
def keys():
    """Create, list and revoke API keys in the database under DOCPROC_DATA_DIR."""


@keys.command("create")
@click.argument("tenant")
def keys_create(tenant):
    """Create a key for TENANT and print it; it is shown only this once."""
    with _database() as db:
        try:
            key = auth.create_key(db, tenant)
        except ValueError as exc:
            raise Exit(str(exc), 2) from None
    click.echo(key)
    click.echo(f"docproc: key created for tenant {tenant!r}; store it now, it cannot be shown again", err=True)


@keys.command("list")
def keys_list():
    """List keys (prefix, tenant, timestamps) as JSON; the secrets themselves are not stored."""
    with _database() as db:
        rows = auth.list_keys(db)
    _emit([{k: (_iso(v) if k.endswith("_at") else v) for k, v in dict(row).items()} for row in rows])


@keys.command("revoke")
@click.argument("prefix")
def keys_revoke(prefix):
    """Revoke the key whose prefix is PREFIX (exit 4 if there is no such active key)."""
    with _database() as db:
        revoked = auth.revoke_key(db, prefix)
    if not revoked:
        raise Exit(f"no active key with prefix {prefix!r}", 4)
    _emit({"prefix": prefix, "revoked": True})


# -- client commands ------------------------------------------------------------------------------
def client_options(fn):
    """--url and --key, from flags or DOCPROC_URL / DOCPROC_API_KEY."""
    fn = click.option("--key", envvar="DOCPROC_API_KEY", show_envvar=True, default=None,
                      help="API key, sent as 'Authorization: Bearer KEY'.")(fn)
    fn = click.option("--url", envvar="DOCPROC_URL", show_envvar=True, default="http://127.0.0.1:8000",
                      show_default=True, help="Base URL of the docproc service.")(fn)
    return fn


def _client(url, key):
    from .client import Client

    return Client(url, key)


def _emit(obj) -> None:
    """JSON on stdout: indented for people at a terminal, one line per object for scripts."""
    indent = 2 if sys.stdout.isatty() else None
    click.echo(json.dumps(obj, indent=indent, ensure_ascii=False))


def _call(fn, *args, **kwargs):
    """Run a client call; a failed request exits with its documented code."""
    from .client import ClientError

    try:
        return fn(*args, **kwargs)
    except ClientError as exc:
        raise Exit(exc.message, exc.exit_code) from None


def _parse_options(options_json: str | None, pairs: tuple[str, ...]) -> dict:
    options = {}
    if options_json:
        try:
            options = json.loads(options_json)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--options") from None
        if not isinstance(options, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--options")
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--option")
        try:
            options[name] = json.loads(raw)  # numbers, true/false, lists: library=["<task id>"]
        except ValueError:
            options[name] = raw
    return options


def _parse_field(ctx, param, values: tuple[str, ...]) -> list:
    """--field NAME or NAME:TYPE, as the items of options.fields."""
    out = []
    for value in values:
        name, sep, kind = value.rpartition(":")
        if not sep:
            name, kind = value, ""
        name = name.strip()
        if not name:
            raise click.BadParameter(f"expected NAME or NAME:TYPE, got {value!r}", ctx, param)
        if sep and kind not in FIELD_TYPES:
            raise click.BadParameter(f"type {kind!r} of {name!r} is not one of {', '.join(FIELD_TYPES)}", ctx, param)
        out.append({"name": name, "type": kind} if kind else name)
    return out


class Progress:
    """Follows tasks on stderr: tqdm bars at a terminal, else one line per change, or nothing."""

    def __init__(self, mode: str, labels: list[str]):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode
        self.labels = labels
        self.lock = threading.Lock()
        self.bars = []
        if mode == "bar":
            from tqdm import tqdm

            width = min(max(len(label) for label in labels), 30)
            self.bars = [tqdm(total=100, position=i, desc=label[:width].ljust(width), file=sys.stderr, leave=True,
                              bar_format="{desc} |{bar:24}| {n:3.0f}%{postfix}", dynamic_ncols=True)
                         for i, label in enumerate(labels)]

    def update(self, i: int, task: dict) -> None:
        pct = round(task["progress"] * 100)
        stage = task["stage"] or ""
        with self.lock:
            if self.mode == "bar":
                bar = self.bars[i]
                bar.n = pct
                bar.set_postfix_str(f"{task['status']} {stage}".strip(), refresh=True)
            elif self.mode == "lines":
                click.echo(f"{self.labels[i]} {task['id']}: {task['status']} {stage} {pct}%".replace("  ", " "),
                           err=True)

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


def _wait_all(url, key, tasks: list[dict], labels: list[str], mode: str) -> list[dict]:
    """Follow every task to its end, a few long-polls at a time; the final objects in order."""
    progress = Progress(mode, labels)
    for i, task in enumerate(tasks):
        progress.update(i, task)

    def follow(i):
        client = _client(url, key)
        try:
            return client.follow(tasks[i], lambda t: progress.update(i, t))
        finally:
            client.close()

    ex = ThreadPoolExecutor(max_workers=min(len(tasks), 8), thread_name_prefix="follow")
    try:
        futures = [ex.submit(_call, follow, i) for i in range(len(tasks))]
        return [f.result() for f in futures]
    finally:
        ex.shutdown(wait=False, cancel_futures=True)
        progress.close()


def _finish(url, key, tasks: list[dict], labels: list[str], wait: bool, mode: str) -> None:
    if not wait:
        for task in tasks:
            _emit(task)
        return
    ids = " ".join(t["id"] for t in tasks)
    below_bars = "\n" if sys.stderr.isatty() else ""  # progress bars leave the cursor at a line's end

    def stop_waiting(_signum, _frame):
        # Exit from the handler itself: a KeyboardInterrupt could land inside the executor's locks and
        # hang its shutdown. os.write and os._exit take no lock; followers sit in long-polls, not waited for.
        os.write(2, f"{below_bars}docproc: stopped waiting; the task(s) go on on the server: {ids}\n".encode())
        os._exit(130)

    previous = signal.signal(signal.SIGINT, stop_waiting)
    try:
        final = _wait_all(url, key, tasks, labels, mode)
    finally:
        signal.signal(signal.SIGINT, previous)
    for task in final:
        _emit(task)
    bad = [t for t in final if t["status"] != "completed"]
    for t in bad:
        errors = "; ".join(e.get("message", "") for e in t.get("errors", []) if isinstance(e, dict))
        click.echo(f"docproc: task {t['id']} {t['status']}{': ' + errors if errors else ''}", err=True)
    if bad:
        sys.exit(1)


PROGRESS = click.option("--progress", type=click.Choice(["auto", "bar", "lines", "none"]), default="auto",
                        show_default=True, help="How --wait shows progress on stderr (auto: bar at a terminal).")


@main.command(context_settings=CONTEXT, epilog=EXIT_CODES)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "-t", "task_type", type=click.Choice(TASK_TYPES), required=True, help="Task type.")
@click.option("--priority", "-p", type=click.IntRange(0, 9), default=None, help="0 (low) to 9 (high); server default 5.")
@click.option("--option", "-o", "pairs", multiple=True, metavar="KEY=VALUE",
              help="One option; VALUE is read as JSON when it parses (true, 3, [\"id\"]), else as text. Repeatable.")
@click.option("--options", "options_json", metavar="JSON", help="All options as one JSON object; --option entries override it.")
@click.option("--field", "-f", "fields", multiple=True, metavar="NAME[:TYPE]", callback=_parse_field,
              help=f"A field you need in the result's fields_requested; TYPE one of {', '.join(FIELD_TYPES)} "
                   "(default: the canonical key's type, else string). Repeatable.")
@click.option("--together", is_flag=True, help="All files in one task (pages of one document) instead of one task each.")
@click.option("--wait", "-w", is_flag=True, help="Follow the task(s) to the end and print the final object(s).")
@PROGRESS
@client_options
def submit(files, task_type, priority, pairs, options_json, fields, together, wait, progress, url, key):
    """Submit FILE(s) for processing; print each task as JSON.

    \b
    Examples:
      docproc submit receipt.jpg --type document --wait
      docproc submit form.png -t form_filling -o library='["<task id>"]' --wait
      docproc submit a.pdf b.pdf -t document | jq -r .id
      docproc submit invoice.pdf -t document -f invoice_number -f due_date:date -f vat_total:amount -w
    """
    options = _parse_options(options_json, pairs)
    if fields:  # after any fields given in --options or -o
        existing = options.get("fields")
        options["fields"] = [*(existing if isinstance(existing, list) else []), *fields]
    client = _client(url, key)
    try:
        tasks = _call(client.submit, list(files), task_type, priority=priority, options=options, together=together)
    finally:
        client.close()
    if together:
        labels = [files[0].name + (f" +{len(files) - 1}" if len(files) > 1 else "")]
    else:
        labels = [f.name for f in files]
    _finish(url, key, tasks, labels, wait, progress)


def _an_id_of(kind: str):
    """A click callback: an id that cannot exist would only come back as a 404; say so without a round trip."""
    def check(ctx, param, value):
        if not is_uuid(value):
            raise Exit(f"no such {kind}: {value!r} is not a {kind} id", 4)
        return value
    return check


_task_id, _batch_id = _an_id_of("task"), _an_id_of("batch")


@main.command(context_settings=CONTEXT, epilog=EXIT_CODES)
@click.argument("task_id", callback=_task_id)
@click.option("--wait", "-w", is_flag=True, help="Follow the task to its end; exit 1 unless it completed.")
@PROGRESS
@client_options
def status(task_id, wait, progress, url, key):
    """Print the task TASK_ID as JSON."""
    client = _client(url, key)
    try:
        task = _call(client.task, task_id)
    finally:
        client.close()
    _finish(url, key, [task], [task_id[:8]], wait, progress)


@main.command("list", context_settings=CONTEXT, epilog=EXIT_CODES)
@click.option("--status", "status_", type=click.Choice(["pending", "processing", "completed", "failed", "cancelled"]))
@click.option("--type", "-t", "task_type", type=click.Choice(TASK_TYPES))
@click.option("--limit", "-n", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--cursor", help="The 'next' value of a previous page.")
@client_options
def list_(status_, task_type, limit, cursor, url, key):
    """List recent tasks, newest first: {"tasks": [...], "next": cursor or null}."""
    client = _client(url, key)
    try:
        _emit(_call(client.list, status=status_, type=task_type, limit=limit, cursor=cursor))
    finally:
        client.close()


@main.command(context_settings=CONTEXT, epilog=EXIT_CODES)
@click.argument("task_id", callback=_task_id)
@client_options
def cancel(task_id, url, key):
    """Cancel TASK_ID: pending tasks at once, running ones at their next stage (exit 1 if already finished)."""
    client = _client(url, key)
    try:
        task = _call(client.cancel, task_id)
    finally:
        client.close()
    _emit(task)
    if task["status"] != "cancelled":
        click.echo(f"docproc: task {task_id} will stop at its next stage boundary", err=True)


@main.command(context_settings=CONTEXT, epilog=EXIT_CODES)
@click.argument("batch_id", callback=_batch_id)
@click.option("--format", "-F", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="csv: a header row, then one row per task (RFC 4180, UTF-8); jsonl: one JSON object per task.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file (replaced only once the whole export arrived); default stdout.")
@client_options
def export(batch_id, fmt, output, url, key):
    """Export the batch BATCH_ID: one row per task with its status, canonical keys and requested fields.

    \b
    Examples:
      docproc export 3f1c... --format csv -o invoices.csv
      docproc export 3f1c... --format jsonl | jq .fields
    """
    client = _client(url, key)
    try:
        if output is None:
            _call(client.export, batch_id, fmt, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return
        partial = output.with_name(f".{output.name}.part")
        try:
            with open(partial, "wb") as out:
                written = _call(client.export, batch_id, fmt, out)
            os.replace(partial, output)
        except OSError as exc:
            raise Exit(f"cannot write {output}: {exc.strerror or exc}", 2) from None
        finally:
            partial.unlink(missing_ok=True)
        click.echo(f"docproc: wrote {written} bytes to {output}", err=True)
    finally:
        client.close()


if __name__ == "__main__":
    main()
