"""The `docproc` command run for real as a subprocess against a live service."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from app import create_app
from app.server import Service
from conftest import make_settings
from drawing import blank_form_lines, draw_page, invoice_lines, png_bytes, receipt_lines

ROOT = Path(__file__).resolve().parent.parent


def docproc(*args, url=None, key=None, env=None, timeout=120):
    """Run `python -m app.cli ARGS` with a clean DOCPROC_* environment; the finished process."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DOCPROC_", "OPENAI_"))}
    if url:
        environ["DOCPROC_URL"] = url
    if key:
        environ["DOCPROC_API_KEY"] = key
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "app.cli", *map(str, args)], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=timeout)


def objects(stdout: str) -> list[dict]:
    """stdout of a client command: one JSON object per line when it is not a terminal."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pages")
    out = {}
    for name, lines in (("receipt", receipt_lines()), ("invoice", invoice_lines()), ("form", blank_form_lines())):
        out[name] = d / f"{name}.png"
        out[name].write_bytes(png_bytes(draw_page(lines)))
    return out


@pytest.fixture
def idle_url(tmp_path):
    """A real HTTP server over an app whose workers never start: tasks stay pending."""
    service = Service(create_app(make_settings(tmp_path / "idle"))).start(workers=False)
    yield service.url
    service.stop(grace=0)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_submit_wait_follows_progress_and_prints_the_result(service, http, pages):
    r = docproc("submit", pages["receipt"], "--type", "document", "--wait", "--progress", "lines", url=service.url)
    assert r.returncode == 0, r.stderr
    (task,) = objects(r.stdout)
    assert task["status"] == "completed" and task["type"] == "document"
    assert (task["result"]["kv"]["total"], task["result"]["kv"]["currency"]) == ("32.50", "USD")
    assert "Total" in task["result"]["text"]
    # Progress went to stderr, one line per change seen, ending with the final state.
    lines = [line for line in r.stderr.splitlines() if task["id"] in line]
    assert lines and lines[-1].endswith("completed done 100%")
    assert lines[0].startswith("receipt.png ")
    # The server agrees.
    assert http.get(f"{service.url}/api/tasks/{task['id']}").json()["status"] == "completed"


def test_submit_several_files_as_a_batch_with_progress_bars(service, pages):
    r = docproc("submit", pages["receipt"], pages["invoice"], "-t", "form", "-w", "--progress", "bar", "-p", "7",
                url=service.url)
    assert r.returncode == 0, r.stderr
    tasks = objects(r.stdout)
    assert [t["status"] for t in tasks] == ["completed", "completed"]
    assert all(t["type"] == "form" and t["priority"] == 7 for t in tasks)
    assert tasks[0]["batch_id"] and tasks[0]["batch_id"] == tasks[1]["batch_id"]
    # In file order: the receipt first, the invoice second.
    assert tasks[0]["result"]["kv"]["total"] == "32.50"
    assert "invoice" in tasks[1]["result"]["tags"]
    # tqdm drew one bar per file and filled both.
    assert "receipt.png" in r.stderr and "invoice.png" in r.stderr
    assert r.stderr.count("100%") >= 2 and "█" in r.stderr


def test_submit_together_makes_one_task_of_all_files(service, pages):
    r = docproc("submit", pages["receipt"], pages["invoice"], "-t", "document", "--together", "-w", "--progress", "none",
                url=service.url)
    assert r.returncode == 0, r.stderr
    (task,) = objects(r.stdout)
    assert [p["page"] for p in task["result"]["pages"]] == [1, 2]
    assert r.stderr == ""


def test_status_list_and_cancel(service, pages):
    r = docproc("submit", pages["invoice"], "-t", "document", "-o", "no_cache=true", url=service.url)
    assert r.returncode == 0, r.stderr
    (submitted,) = objects(r.stdout)
    assert submitted["status"] in ("pending", "processing")
    task_id = submitted["id"]

    r = docproc("status", task_id, "--wait", "--progress", "none", url=service.url)
    assert r.returncode == 0, r.stderr
    assert objects(r.stdout)[0]["status"] == "completed"

    r = docproc("list", "--status", "completed", "--type", "document", "--limit", "5", url=service.url)
    assert r.returncode == 0, r.stderr
    (page,) = objects(r.stdout)
    assert task_id in [t["id"] for t in page["tasks"]]
    assert all(t["status"] == "completed" and t["type"] == "document" for t in page["tasks"])

    r = docproc("cancel", task_id, url=service.url)
    assert r.returncode == 1
    assert "task_finished" in r.stderr and r.stdout == ""


def test_options_as_json_values_reach_the_server(service, http, pages):
    source = objects(docproc("submit", pages["receipt"], "-t", "document", "-w", url=service.url).stdout)[0]
    assert source["status"] == "completed"
    library = json.dumps([source["id"], {"kv": {"Full Name": "Jane Doe"}}])
    r = docproc("submit", pages["form"], "-t", "form_filling", "--options", '{"lang": "eng"}', "-o", f"library={library}",
                "-w", url=service.url)
    assert r.returncode == 0, r.stderr
    filled = objects(r.stdout)[0]["result"]["filled"]
    assert filled["Full Name"]["value"] == "Jane Doe"
    assert filled["Email"] == {"value": "info@acme-store.com", "source": {"type": "document", "id": source["id"]}}


def test_pending_task_cancelled_then_waited_on_exits_1(idle_url, pages):
    (task,) = objects(docproc("submit", pages["receipt"], "-t", "document", url=idle_url).stdout)
    assert task["status"] == "pending"
    r = docproc("cancel", task["id"], url=idle_url)
    assert r.returncode == 0, r.stderr
    assert objects(r.stdout)[0]["status"] == "cancelled"
    r = docproc("status", task["id"], url=idle_url)
    assert r.returncode == 0 and objects(r.stdout)[0]["status"] == "cancelled"
    r = docproc("status", task["id"], "--wait", url=idle_url)
    assert r.returncode == 1
    assert objects(r.stdout)[0]["status"] == "cancelled"
    assert f"task {task['id']} cancelled" in r.stderr


def test_interrupted_wait_exits_130_and_leaves_the_task(idle_url, pages, http):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DOCPROC_")}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "submit", str(pages["receipt"]), "-t", "document",
                             "--wait", "--progress", "lines", "--url", idle_url],
                            cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()  # "receipt.png <id>: pending queued 0%": now in its long-poll
        assert " pending " in first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    task_id = first.split()[1].rstrip(":")
    assert f"go on on the server: {task_id}" in err
    assert http.get(f"{idle_url}/api/tasks/{task_id}").json()["status"] == "pending"


def test_failed_task_exits_1_with_its_errors(tmp_path, start_service, pages):
    service = start_service(create_app(make_settings(tmp_path, task_timeout=0.001)))
    r = docproc("submit", pages["receipt"], "-t", "document", "--wait", url=service.url)
    assert r.returncode == 1
    (task,) = objects(r.stdout)
    assert task["status"] == "failed" and task["errors"]
    assert f"task {task['id']} failed: " in r.stderr and "deadline" in r.stderr


def test_exit_codes_for_usage_not_found_and_connection_errors(service, pages):
    missing = str(uuid.uuid4())
    cases = [
        (("status", missing), 4, "not_found"),
        (("status", "not-a-task-id"), 4, "not a task id"),
        (("cancel", missing), 4, "not_found"),
        (("submit", pages["receipt"]), 2, "Missing option '--type'"),
        (("submit", pages["receipt"], "-t", "invoice"), 2, "'invoice' is not one of"),
        (("submit", "/nonexistent/page.png", "-t", "document"), 2, "does not exist"),
        (("submit", pages["receipt"], "-t", "document", "--options", "{bad"), 2, "not valid JSON"),
        (("submit", pages["receipt"], "-t", "document", "-o", "lang"), 2, "expected key=value"),
        (("submit", pages["receipt"], "-t", "document", "-o", "colour=red"), 2, "unknown_option"),
        (("submit", pages["receipt"], "-t", "form_filling"), 2, "missing_option"),
        (("list", "--limit", "0"), 2, "Invalid value for '--limit'"),
    ]
    for args, code, message in cases:
        r = docproc(*args, url=service.url)
        assert (r.returncode, message in r.stderr) == (code, True), (args, r.stderr)
        assert r.stdout == ""
    r = docproc("list", url=f"http://127.0.0.1:{closed_port()}")
    assert r.returncode == 3 and "cannot reach" in r.stderr


def test_url_and_key_come_from_the_environment_or_flags(service):
    r = docproc("list", "-n", "1", env={"DOCPROC_URL": service.url})
    assert r.returncode == 0 and "tasks" in objects(r.stdout)[0]
    r = docproc("list", "-n", "1", "--url", service.url, env={"DOCPROC_URL": f"http://127.0.0.1:{closed_port()}"})
    assert r.returncode == 0
    help_text = docproc("submit", "--help").stdout
    assert "DOCPROC_URL" in help_text and "DOCPROC_API_KEY" in help_text
    for code in range(6):
        assert f"  {code}  " in help_text


# -- API keys -----------------------------------------------------------------------------------
def test_keys_create_list_revoke(tmp_path, start_service):
    env = {"DOCPROC_DATA_DIR": str(tmp_path / "data")}
    r = docproc("keys", "create", "acme", env=env)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert len(key) >= 20 and "\n" not in key and "cannot be shown again" in r.stderr
    r = docproc("keys", "list", env=env)
    assert r.returncode == 0, r.stderr
    (listed,) = objects(r.stdout)[0]
    assert listed["tenant"] == "acme" and key.startswith(f"dp_{listed['prefix']}_") and listed["revoked_at"] is None
    assert listed["created_at"].endswith("Z")
    assert key not in r.stdout  # only the prefix is shown again

    # The key works against a service on the same database; no key, or a wrong one, is exit 5.
    service = start_service(create_app(make_settings(tmp_path, allow_anonymous=False)))
    assert docproc("list", url=service.url, key=key).returncode == 0
    assert docproc("list", url=service.url).returncode == 5
    assert docproc("list", url=service.url, key=key[:-2] + "xx").returncode == 5

    r = docproc("keys", "revoke", listed["prefix"], env=env)
    assert r.returncode == 0, r.stderr
    assert objects(r.stdout)[0] == {"prefix": listed["prefix"], "revoked": True}
    (after,) = objects(docproc("keys", "list", env=env).stdout)[0]
    assert after["revoked_at"] is not None
    assert docproc("list", url=service.url, key=key).returncode == 5
    r = docproc("keys", "revoke", "nosuchprefix", env=env)
    assert r.returncode == 4 and "no active key" in r.stderr
    r = docproc("keys", "create", "no spaces allowed", env=env)
    assert r.returncode == 2 and "tenant name" in r.stderr


def test_keys_with_a_bad_setting_is_a_usage_error(tmp_path):
    r = docproc("keys", "list", env={"DOCPROC_DATA_DIR": str(tmp_path), "DOCPROC_PORT": "many"})
    assert r.returncode == 2 and "DOCPROC_PORT" in r.stderr


# -- requested fields and exports, on real corpus invoices ------------------------------------------
@pytest.fixture(scope="module")
def invoices(corpus):
    docs = {d.name: d for d in corpus["invoices"]}
    return [docs["coolblue1"], docs["QualityHosting"]]


def test_submit_fields_then_export_the_batch_as_csv_and_jsonl(service, http, invoices, tmp_path):
    from bench import quality_score

    r = docproc("submit", *(d.path for d in invoices), "-t", "document", "--field", "invoice_number",
                "-f", "due_date:date", "-f", "total:amount", "-f", "order number:string", "-w", "--progress", "none",
                url=service.url)
    assert r.returncode == 0, r.stderr
    tasks = objects(r.stdout)
    batch_id = tasks[0]["batch_id"]
    assert batch_id and {t["batch_id"] for t in tasks} == {batch_id}
    # The fields reached the server as options.fields, with the types given.
    for task, doc in zip(tasks, invoices):
        asked = task["result"]["fields_requested"]
        assert list(asked) == ["invoice_number", "due_date", "total", "order number"]
        assert (asked["due_date"]["type"], asked["total"]["type"], asked["order number"]["type"]) == ("date", "amount", "string")
        assert quality_score.same_id(asked["invoice_number"]["value"], doc.fields["invoice_number"])
        assert asked["total"]["value"] == doc.fields["total"] and asked["total"]["currency"] == doc.fields["currency"]
        assert asked["due_date"]["value"] is None  # neither invoice prints one

    out = tmp_path / "out" / "batch.csv"
    out.parent.mkdir()
    r = docproc("export", batch_id, "--format", "csv", "-o", out, url=service.url)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and f"to {out}" in r.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["batch.csv"]  # no partial file left beside it
    served = http.get(f"{service.url}/api/batches/{batch_id}/export?format=csv").content
    assert out.read_bytes() == served
    header, *rows = list(csv.reader(io.StringIO(served.decode(), newline="")))
    assert [row[header.index("task_id")] for row in rows] == [t["id"] for t in tasks]
    assert [row[header.index("field:total")] for row in rows] == [f"{d.fields['total']:.2f}" for d in invoices]

    r = docproc("export", batch_id, "-F", "jsonl", url=service.url)
    assert r.returncode == 0, r.stderr
    records = objects(r.stdout)
    assert [rec["task_id"] for rec in records] == [t["id"] for t in tasks]
    for rec, task in zip(records, tasks):
        assert rec["kv"]["invoice_number"] == task["result"]["kv"].get("invoice_number")
        assert rec["fields"]["total"] == {k: task["result"]["fields_requested"]["total"][k]
                                          for k in ("value", "type", "currency")}


def test_field_and_export_usage_errors(service, tmp_path):
    page = tmp_path / "p.png"
    page.write_bytes(png_bytes(draw_page(receipt_lines())))
    missing = str(uuid.uuid4())
    cases = [
        (("submit", page, "-t", "document", "--field", "total:money"), 2, "'money' of 'total' is not one of"),
        (("submit", page, "-t", "document", "--field", ":date"), 2, "expected NAME or NAME:TYPE"),
        (("submit", page, "-t", "document", "-f", "a" * 65), 2, "invalid_fields"),
        (("export", missing), 4, "not_found"),
        (("export", "not-a-batch"), 4, "not a batch id"),
        (("export", missing, "--format", "xlsx"), 2, "'xlsx' is not one of"),
        (("export", missing, "-o", tmp_path / "x.csv"), 4, "not_found"),
    ]
    for args, code, message in cases:
        r = docproc(*args, url=service.url)
        assert (r.returncode, message in r.stderr) == (code, True), (args, r.stderr)
        assert r.stdout == ""
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / ".x.csv.part").exists()
    r = docproc("export", missing, url=f"http://127.0.0.1:{closed_port()}")
    assert r.returncode == 3 and "cannot reach" in r.stderr
