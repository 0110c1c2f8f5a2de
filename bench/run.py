"""`python -m bench.run`: every measurement in one go, a table of ratios, bench/RESULTS.md.

Each figure is compared with a baseline measured in the same run on the same machine:
the raw tesseract CLI, the ideal of the LLM-bound mix, huey on SQLite.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import corpus, scenarios
from .client import close_sessions, run_one
from .service import ServiceProcess

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTIONS = ("idle", "ocr", "fairness", "pdf", "overhead", "peer", "llm")
LLM_CONCURRENCY = 4  # the service's default DOCPROC_LLM_CONCURRENCY
BATCH_FILES = 50  # files per POST /api/batches in the batched overhead row
PEER_ROUNDS = 3  # ours and huey alternate; both vary run to run (huey by its polling sleeps): medians compared
OCR_ROUNDS = 3  # service runs, each between two raw runs: tesseract's speed here drifts by 10% in a minute


@dataclass
class Sizes:
    pages: int = 60  # OCR bound
    ocr_rounds: int = OCR_ROUNDS
    llm_tasks: int = 100
    cached: int = 2000  # overhead and the peer
    small: int = 200  # small tasks through the queue
    pdf_pages: int = 100  # fairness
    text_pages: int = 40  # born-digital PDF: text layer against OCR of the same pages
    singles: int = 4
    idle_seconds: float = 3.0
    probes: int = 20  # pick-up latency
    clients: int = 8


QUICK = Sizes(pages=20, ocr_rounds=1, llm_tasks=32, cached=300, small=40, pdf_pages=24, text_pages=10, singles=2, idle_seconds=1.0,
              probes=5)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, under a minute; writes no RESULTS.md unless --output")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--pages", type=int, help="pages for the OCR-bound run")
    p.add_argument("--llm-tasks", type=int, help="one-page tasks in the LLM-bound mix")
    p.add_argument("--cached", type=int, help="cached tasks for the overhead run (and huey jobs)")
    p.add_argument("--pdf-pages", type=int, help="pages of the long PDF in the fairness run")
    p.add_argument("--text-pages", type=int, help="pages of the born-digital PDF (text layer against OCR)")
    p.add_argument("--clients", type=int, help="concurrent HTTP clients")
    p.add_argument("--llm-concurrency", type=int, default=LLM_CONCURRENCY)
    p.add_argument("--llm-delay", type=float, default=1.0, help="seconds the loopback LLM takes per answer")
    p.add_argument("--output", type=Path, help=f"where to write the results (default {RESULTS.relative_to(HERE.parent)} for a full run)")
    p.add_argument("--workdir", type=Path, help="keep corpus, data dirs and logs here (default: a temporary dir, removed)")
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    for name in ("pages", "llm_tasks", "cached", "pdf_pages", "text_pages", "clients"):
        if getattr(args, name) is not None:
            sizes = Sizes(**{**sizes.__dict__, name: getattr(args, name)})
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    return args, sizes, only


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(workdir: Path, sizes: Sizes, only: list[str], args) -> dict:
    """Run the selected sections; every figure in one dict."""
    cores = os.cpu_count() or 1
    out: dict = {"machine": scenarios.machine(), "sizes": sizes, "llm_concurrency": args.llm_concurrency,
                 "background": scenarios.background_load()}
    if out["background"] > 0.05:
        log(f"warning: the cores are already {out['background']:.0%} busy; the figures will be skewed")
    others = scenarios.OtherLoad()
    log(f"corpus: {sizes.pages} pages for the OCR run")
    pages = corpus.write_corpus(workdir / "corpus", sizes.pages)
    warm = corpus.png_bytes(corpus.make_page(9999))
    small = workdir / "corpus" / "small.png"
    small.write_bytes(corpus.png_bytes(corpus.small_page()))
    tiny = corpus.png_bytes(corpus.tiny_page())
    if {"ocr", "llm", "fairness"} & set(only):
        log(f"raw tesseract CLI: {len(pages)} pages, {cores} processes")
        out["raw"] = scenarios.raw_tesseract(pages, cores)
    if {"idle", "ocr", "fairness", "pdf", "overhead", "peer"} & set(only):
        with ServiceProcess(workdir, "service") as svc:
            run_one(svc.url, warm, options=scenarios.NO_CACHE)
            rss = out["rss_phases"] = {"after one task": svc.peak_rss_mb()}
            if "idle" in only:
                log(f"idle: {sizes.idle_seconds:g} s, then {sizes.probes} pick-up probes")
                out["idle"] = scenarios.idle(svc, small.read_bytes(), sizes.idle_seconds, sizes.probes)
            if "ocr" in only:
                rounds, raws = [], [out["raw"]]
                for n in range(sizes.ocr_rounds):
                    log(f"service, round {n + 1}/{sizes.ocr_rounds}: the same {len(pages)} pages, "
                        f"{sizes.clients} clients, then raw tesseract CLI again")
                    run = scenarios.through_service(svc, [p.read_bytes() for p in pages], sizes.clients)
                    raws.append(scenarios.raw_tesseract(pages, cores))
                    # Each round against the raw runs just before and just after it.
                    run["raw_rates"] = (raws[-2]["rate"], raws[-1]["rate"])
                    run["ratio"] = run["rate"] / (sum(run["raw_rates"]) / 2)
                    rounds.append(run)
                rss["after the OCR run"] = svc.peak_rss_mb()
                out["service"] = sorted(rounds, key=lambda run: run["ratio"])[len(rounds) // 2]  # the median round
                out["service"]["rounds"] = [run["ratio"] for run in rounds]
                out["service"]["own_cpu_ms"] = sum(run["own_cpu_ms"] for run in rounds) / len(rounds)
                out["raw"]["rate"] = sum(raw["rate"] for raw in raws) / len(raws)
                out["raw"]["cpu_per_page"] = sum(raw["cpu_per_page"] for raw in raws) / len(raws)
                out["raw"]["page_time"] = cores / out["raw"]["rate"]
            if "fairness" in only:
                log(f"fairness: a {sizes.pdf_pages}-page PDF, then {sizes.singles} one-page tasks")
                pdf = corpus.pdf_bytes([corpus.make_page(3000 + i) for i in range(sizes.pdf_pages)])
                singles = [corpus.png_bytes(corpus.make_page(2000 + i)) for i in range(sizes.singles)]
                out["fairness"] = scenarios.fairness(svc, pdf, sizes.pdf_pages, singles, out["raw"]["page_time"])
                rss[f"after the {sizes.pdf_pages}-page PDF"] = svc.peak_rss_mb()
            if "pdf" in only:
                log(f"born-digital PDF: {sizes.text_pages} pages from the text layer, then the same pages as a scan")
                born = corpus.text_pdf_of_pages(list(range(5000, 5000 + sizes.text_pages)))
                out["pdf_text"] = scenarios.text_layer(svc, born, corpus.rendered_pdf(born), sizes.text_pages)
            if "overhead" in only or "peer" in only:
                log(f"overhead: {sizes.small} small tasks through the queue, {sizes.cached} cached tasks")
                out["small"] = scenarios.queued_small(svc, small, sizes.small, sizes.clients, cores)
                out["cached"] = scenarios.cached(svc, tiny, sizes.cached, sizes.clients)
                log(f"overhead: the {sizes.cached} cached tasks as JSON, then in batches of {BATCH_FILES} files")
                out["cached_json"] = scenarios.cached_json(svc, tiny, sizes.cached, sizes.clients)
                out["cached_batches"] = scenarios.cached_batches(svc, tiny, sizes.cached, sizes.clients, BATCH_FILES)
                out["floor"] = scenarios.http_floor(svc, sizes.cached, sizes.clients)
                rss["after the overhead runs"] = svc.peak_rss_mb()
            out["workers"] = cores + args.llm_concurrency + 2
            if "peer" in only:
                log(f"peer: {PEER_ROUNDS} rounds of {sizes.cached} cached tasks here, then {sizes.cached} no-op jobs "
                    f"through huey ({out['workers']} thread workers; this service idles meanwhile)")
                out["peer_rounds"] = [
                    (out["cached"]["rate"] if n == 0 else scenarios.cached(svc, tiny, sizes.cached, sizes.clients)["rate"],
                     scenarios.huey_peer(workdir / f"huey-{n}", sizes.cached, out["workers"], sizes.clients)["rate"])
                    for n in range(PEER_ROUNDS)
                ]
            out["rss_mb"] = svc.peak_rss_mb()
    if "llm" in only:
        log(f"LLM-bound mix: {sizes.llm_tasks} one-page tasks, LLM answers after {args.llm_delay:g} s")
        blobs = [corpus.png_bytes(corpus.make_page(1000 + i)) for i in range(sizes.llm_tasks)]
        # The OCR bound again, bracketing the mix: on a shared machine tesseract's speed drifts by
        # tens of percent within minutes, and the ideal must be the machine's speed during the mix.
        before = scenarios.raw_tesseract(pages, cores)["rate"]
        out["llm"] = scenarios.llm_mix(workdir, blobs, warm, llm_concurrency=args.llm_concurrency,
                                       delay=args.llm_delay, clients=2 * (cores + args.llm_concurrency + 2),
                                       ocr_rate=before)
        after = scenarios.raw_tesseract(pages, cores)["rate"]
        m = out["llm"]
        m["ocr_bound"], m["ocr_bounds"] = (before + after) / 2, (before, after)
        m["ideal"] = min(m["ocr_bound"], args.llm_concurrency / args.llm_delay)
        m["naive"] = cores / (cores / m["ocr_bound"] + args.llm_delay)
    out["others"] = others.share()
    return out


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def table(r: dict) -> list[str]:
    """The results as a Markdown table: measure, docproc, baseline, ratio, target, met."""
    rows = []
    cores = r["machine"]["cores"]
    if "service" in r:
        raw, svc = r["raw"], r["service"]
        ratio = svc["ratio"]
        rounds = svc["rounds"]
        rows.append(("1", f"OCR bound: pages/s, {svc['tasks']} one-page tasks (HTTP submit, long-poll, local extractor; "
                          f"mean word confidence {svc['confidence']:.0f})"
                          + (f"; the median of {len(rounds)} rounds, each against the raw runs just before and after "
                             f"it (ratios {', '.join(f'{x:.2f}' for x in rounds)})" if len(rounds) > 1 else ""),
                     f"{svc['rate']:.2f}", "{:.2f} raw `tesseract` CLI, {} processes (mean of {:.2f} before, {:.2f} after)"
                     .format(sum(svc["raw_rates"]) / 2, raw["procs"], *svc["raw_rates"]),
                     f"{ratio:.2f}", "≥ 0.90", _met(ratio >= 0.90)))
        rows.append(("1", "service CPU outside tesseract per page (Python, HTTP, SQLite)",
                     f"{svc['own_cpu_ms']:.0f} ms", f"{raw['cpu_per_page'] * 1000:.0f} ms tesseract CPU per page",
                     f"{svc['own_cpu_ms'] / (raw['cpu_per_page'] * 1000):.3f}", "", ""))
    if "llm" in r:
        m = r["llm"]
        ratio = m["rate"] / m["ideal"]
        rows.append(("2", f"LLM-bound mix: tasks/s, {m['tasks']} one-page tasks, LLM answers after {m['delay']:g} s, "
                          f"{m['llm_concurrency']} LLM slots",
                     f"{m['rate']:.2f}", f"{m['ideal']:.2f} ideal = min(OCR bound {m['ocr_bound']:.2f} (raw CLI "
                                         f"{m['ocr_bounds'][0]:.2f} before, {m['ocr_bounds'][1]:.2f} after the mix), "
                                         f"{m['llm_concurrency']}/{m['delay']:g} s)",
                     f"{ratio:.2f}", "≥ 0.85", _met(ratio >= 0.85)))
        rows.append(("2", "cores busy during the mix (mean); OCR running while LLM calls wait",
                     f"{m['cpu']:.0%}; {m['overlap']:.0%} of LLM-wait samples", f"naive OCR-then-LLM pool of {cores} "
                     f"workers: {m['naive']:.2f} tasks/s", f"{m['rate'] / m['naive']:.2f}", "", ""))
    if "small" in r:
        s = r["small"]
        rows.append(("3", f"small one-page tasks through HTTP + queue + workers + OCR: tasks/s ({s['tasks']} tasks, "
                          "640x640 label)", f"{s['rate']:.1f}", f"{s['raw_rate']:.1f} raw CLI on the same file",
                     f"{s['rate'] / s['raw_rate']:.2f}", "", f"{s['own_cpu_ms']:.0f} ms service CPU per task; "
                     f"{s['overhead_ms']:.0f} ms of a core lost per task against raw"))
        rows.append(("3", "small tasks: submit latency p50 / p99; submit-to-done p50 / p99",
                     f"{s['submit_p50']:.0f} / {s['submit_p99']:.0f} ms; {s['done_p50']:.0f} / {s['done_p99']:.0f} ms",
                     "", "", "", ""))
    if "cached" in r:
        c = r["cached"]
        rows.append(("3", f"overhead: cached tasks/s ({c['tasks']} tasks of a 240x64 image: HTTP + intake + SQLite, "
                          f"{r['sizes'].clients} clients)", f"{c['rate']:.0f}", "", "", "",
                     f"{c['own_cpu_ms']:.2f} ms service CPU per task"))
        rows.append(("3", "cached: submit latency = submit-to-done (the 202 already carries the result), p50 / p99",
                     f"{c['submit_p50']:.1f} / {c['submit_p99']:.1f} ms", "", "", "", ""))
    if "cached_json" in r:
        c = r["cached_json"]
        rows.append(("3", f"overhead, JSON: cached tasks/s, the same {c['tasks']} tasks as application/json with the image "
                          f"in base64 (one task per request, no multipart parsing), {r['sizes'].clients} clients",
                     f"{c['rate']:.0f}", "", "", "", f"{c['own_cpu_ms']:.2f} ms service CPU per task; "
                     f"submit p50 / p99 {c['submit_p50']:.1f} / {c['submit_p99']:.1f} ms"))
    if "cached_batches" in r:
        c = r["cached_batches"]
        rows.append(("3", f"overhead, batched: cached tasks/s, the same {c['tasks']} tasks as {c['requests']} "
                          f"POST /api/batches of {c['per_request']} files (one task per file) plus one "
                          f"GET /api/batches/ID each, {r['sizes'].clients} clients",
                     f"{c['rate']:.0f}", "", "", "", f"{c['own_cpu_ms']:.2f} ms service CPU per task"))
    if "floor" in r:
        f = r["floor"]
        rows.append(("3", "HTTP floor: GET /api/health requests/s, same clients (the cheapest request there is)",
                     f"{f['rate']:.0f}", "", "", "", f"{f['own_cpu_ms']:.2f} ms service CPU per request"))
    if "peer_rounds" in r:
        ours, theirs = (sorted(side) for side in zip(*r["peer_rounds"]))
        mine, huey = ours[len(ours) // 2], theirs[len(theirs) // 2]
        ratio = mine / huey
        h = {"rate": huey}
        rounds = "; ".join(f"{a:.0f} vs {b:.0f}" for a, b in r["peer_rounds"])
        rows.append(("4", "peer: our cached tasks/s, one multipart HTTP request per task, vs huey no-op jobs/s "
                          f"(SqliteHuey, {r['workers']} thread workers, enqueue-to-result); medians of "
                          f"{len(r['peer_rounds'])} alternating rounds ({rounds})", f"{mine:.0f}", f"{huey:.0f} huey",
                     f"{ratio:.2f}", "≥ 1.0", _met(ratio >= 1.0)))
        if "cached_json" in r:
            c = r["cached_json"]
            rows.append(("4", "peer, JSON: our cached tasks/s with one JSON+base64 request per task vs the same huey "
                              "jobs/s (informative: the target is on the row above)", f"{c['rate']:.0f}",
                         f"{h['rate']:.0f} huey", f"{c['rate'] / h['rate']:.2f}", "", ""))
        if "cached_batches" in r:
            c = r["cached_batches"]
            rows.append(("4", f"peer, batched: our cached tasks/s with {c['per_request']} tasks per HTTP request "
                              "(POST /api/batches) vs huey jobs/s with one enqueue call per job (different unit of "
                              "work per call; informative)", f"{c['rate']:.0f}", f"{h['rate']:.0f} huey",
                         f"{c['rate'] / h['rate']:.2f}", "", ""))
    if "fairness" in r:
        f = r["fairness"]
        rows.append(("5", f"fairness: {f['singles']} one-page tasks submitted while a {f['pages']}-page PDF runs: "
                          "finished within (page-times, max / mean)",
                     f"{f['single_max']:.1f} / {f['single_mean']:.1f}", f"{f['pdf']:.0f} page-times for the PDF",
                     f"{f['single_max'] / f['pdf']:.3f}", "≤ 5", _met(f["single_max"] <= 5)))
        rows.append(("5", "the long PDF alone uses every core: pages/s", f"{f['pdf_rate']:.2f}",
                     f"{r['raw']['rate']:.2f} raw", f"{f['pdf_rate'] / r['raw']['rate']:.2f}", "", ""))
    if "pdf_text" in r:
        p = r["pdf_text"]
        rows.append(("8", f"born-digital PDF, {p['pages']} pages: pages/s read from the text layer (OCR stage time; "
                          f"sources {', '.join(p['sources'])}; whole task {p['text_task']:.2f} s)",
                     f"{p['text_rate']:.1f}", f"{p['ocr_rate']:.2f} OCR of the same pages rendered at 150 dpi "
                     f"(whole task {p['ocr_task']:.1f} s)", f"{p['ratio']:.0f}", "≥ 50", _met(p["ratio"] >= 50)))
    if "idle" in r:
        i = r["idle"]
        rows.append(("6", f"idle: service CPU over {i['seconds']:g} s ({i['threads']} threads)", f"{i['cpu']:.2%} of a core",
                     "", "", "~0%", _met(i["cpu"] < 0.01)))
        rows.append(("6", "pick-up latency (claim − submit), p50 / max", f"{i['pickup_p50']:.1f} / {i['pickup_max']:.1f} ms",
                     "", "", "milliseconds", _met(i["pickup_max"] < 50)))
    if "rss_mb" in r:
        peak = max(r["rss_mb"], r.get("llm", {}).get("rss_mb", 0))
        base = f"{r['raw']['rss_mb']:.0f} MB per tesseract process" if "raw" in r else ""
        phases = ", ".join(f"{k} {v:.0f}" for k, v in r.get("rss_phases", {}).items())
        if "llm" in r:
            phases += f"; the LLM-mix service (openai client loaded) {r['llm']['rss_mb']:.0f}"
        rows.append(("7", f"peak RSS of the service process (VmHWM, MB: {phases})", f"{peak:.0f} MB", base, "", "", ""))
    head = ("#", "measure", "docproc", "baseline (same run)", "ratio", "target", "met")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def machine_line(r: dict) -> str:
    m = r["machine"]
    return (f"machine: {m['cores']} cores ({m['cpu'] or 'unknown CPU'}), tesseract {m['tesseract']}, "
            f"Python {m['python']}, {m['os']}. Other processes kept the cores {r['background']:.0%} busy "
            f"just before the run and {r.get('others', 0):.0%} during it (0% = the figures are clean).")


def report(r: dict) -> str:
    parts = [machine_line(r), "", *table(r)]
    if "llm" in r:
        parts += ["", "LLM-bound mix over time (cores busy, tesseract processes running, LLM calls waiting, tasks done):",
                  "", "```", *r["llm"]["figure"], "```"]
    return "\n".join(parts)


def write_results(path: Path, text: str, command: str) -> None:
    """The generated part, then whatever follows a '## Notes' heading in the existing file."""
    notes = ""
    if path.exists():
        old = path.read_text()
        if "\n## Notes" in old:
            notes = old[old.index("\n## Notes"):]
    path.write_text(
        "# docproc benchmark results\n\n"
        "Generated by `python -m bench.run` (or `bash dev.sh bench`); a full run takes about four minutes\n"
        "on 2 cores, `--quick` under one. Reproduce on any machine with tesseract installed:\n\n"
        "```sh\nbash dev.sh bench            # or: .venv/bin/python -m bench.run\n"
        ".venv/bin/python -m bench.run --quick --output /tmp/quick.md\n```\n\n"
        f"Last run: `{command}` on {time.strftime('%Y-%m-%d %H:%M')}.\n\n" + text + "\n" + notes)


def main(argv=None) -> str:
    args, sizes, only = parse_args(sys.argv[1:] if argv is None else argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="docproc-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        results = measure(workdir, sizes, only, args)
    finally:
        close_sessions()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(results)
    print(text)
    output = args.output or (None if args.quick else RESULTS)
    if output is not None:
        write_results(output, text, " ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)]))
        log(f"results written to {output}")
    log(f"done in {time.perf_counter() - started:.0f} s")
    return text


if __name__ == "__main__":
    main()
