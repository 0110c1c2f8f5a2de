"""`python -m bench.quality`: extraction and OCR quality on the real corpus, written to bench/QUALITY.md.

Every document of ../shared/corpus (or DOCPROC_CORPUS) goes through the service's own page reading
(OCR, or a PDF's text layer) and the built-in local extractor; each field is counted three ways:
extracted right, present in the OCR text (what any extractor could reach) and total. Receipts are
also read by raw `tesseract FILE stdout` in the same run, and both texts are scored against the
receipts' line transcripts. OCR output is cached on disk by file hash and pipeline version
(bench/quality_ocr.py); `--fresh` reads everything again.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.extract.fields import parse_fields
from app.extract.local import LocalExtractor

from . import quality_corpus as corpus
from . import quality_score as score
from .quality_ocr import Reader

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "QUALITY.md"
REQUESTED = ["invoice_number", "date", "total"]

# (set, field) -> (target count or ratio, "count" | "ratio")
TARGETS = {
    ("receipts", "date"): 54, ("receipts", "total"): 51, ("receipts", "company"): 48, ("receipts", "address"): 39,
    ("forms", "kv recall"): 0.40, ("forms", "kv precision"): 0.60,
    ("invoices", "date"): 10, ("invoices", "total"): 9, ("invoices", "invoice_number"): 9,
    ("contracts", "effective_date"): 8,
}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n")[0])
    p.add_argument("--limit", type=int, help="only the first N documents of each set (a smoke run)")
    p.add_argument("--sets", default=",".join(corpus.SETS), help="comma-separated subset of the sets")
    p.add_argument("--fresh", action="store_true", help="ignore the OCR cache: read every file again")
    p.add_argument("--output", type=Path, help=f"where to write the report (default {OUTPUT.name} for a full run)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="files read at once (one tesseract each)")
    return p.parse_args(argv)


def log(message: str) -> None:
    print(f"[quality {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv=None) -> str | None:
    args = parse_args(argv)
    root = corpus.corpus_dir()
    reason = corpus.missing_reason(root)
    if reason:
        log(f"skipped: {reason}")
        return None
    wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    docs = {name: items for name, items in corpus.load(root, limit=args.limit).items() if name in wanted}
    reader = Reader(fresh=args.fresh)
    measures = measure(docs, reader, args.jobs)
    text = report(measures, reader.version, full=args.limit is None and set(wanted) == set(corpus.SETS))
    print(text)
    out = args.output or (OUTPUT if args.limit is None and set(wanted) == set(corpus.SETS) else None)
    if out:
        out.write_text(text)
        log(f"wrote {out}")
    return text


def measure(docs: dict, reader: Reader, jobs: int) -> dict:
    """Read every document (in parallel), extract, and count."""
    everything = [d for items in docs.values() for d in items]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        readings = dict(zip((d.path for d in everything), pool.map(lambda d: reader.read(d.path), everything)))
        receipts = docs.get("receipts", [])
        raws = dict(zip((d.path for d in receipts), pool.map(lambda d: reader.raw_text(d.path), receipts)))
    read_wall = time.monotonic() - started
    log(f"read {len(everything)} files in {read_wall:.1f}s "
        f"({sum(r.cached for r in readings.values())} from the cache)")
    extractor = LocalExtractor()
    started = time.monotonic()
    rows, ocr = [], {}
    for name, items in docs.items():
        results = []
        for d in items:
            pages = readings[d.path].pages
            fields = REQUESTED if name == "invoices" else None
            results.append((d, pages, _extract(extractor, d.kind, pages, fields)))
        rows += SCORERS[name](results)
        if name == "receipts":
            ocr = _ocr_accuracy(results, raws, readings)
    extract_seconds = time.monotonic() - started
    return {"rows": rows, "ocr": ocr, "read_wall": read_wall, "extract_seconds": extract_seconds,
            "files": len(everything), "pages": sum(len(r.pages) for r in readings.values()),
            "cached": sum(r.cached for r in readings.values()),
            "read_seconds": sum(r.seconds for r in readings.values()), "jobs": jobs}


def _extract(extractor, kind, pages, fields):
    specs = parse_fields(fields) if fields else None
    return extractor.extract(kind, pages, fields=specs).data


def _text(pages) -> str:
    return "\n".join(p.text for p in pages)


def _row(set_name, field, results, got, present=None):
    """One counted row: how many documents `got` is true for, and `present` (the ceiling), of those with truth."""
    scored = [(d, pages, data) for d, pages, data in results if field in d.fields or d.set == "forms"]
    hits = sum(bool(got(d, pages, data)) for d, pages, data in scored)
    ceiling = None if present is None else sum(bool(present(d, _text(pages))) for d, pages, _ in scored)
    return {"set": set_name, "field": field, "extracted": hits, "in_text": ceiling, "total": len(scored)}


def _kv(data) -> dict:
    return data.get("kv", {})


def _receipts(results) -> list[dict]:
    truth_date = lambda d: score.day_first_iso(d.fields["date"])  # noqa: E731
    rows = [
        _row("receipts", "date", results, lambda d, p, r: _kv(r).get("date") == truth_date(d),
             lambda d, text: score.compact(d.fields["date"]) in score.compact(text)),
        _row("receipts", "total", results,
             lambda d, p, r: score.amount(_kv(r).get("total")) == score.amount(d.fields["total"]),
             lambda d, text: score.amount_in_text(d.fields["total"], text)),
        _row("receipts", "company", results, lambda d, p, r: score.similar(_kv(r).get("company"), d.fields["company"]),
             lambda d, text: score.lines_match(d.fields["company"], text)),
        _row("receipts", "address", results, lambda d, p, r: score.similar(_kv(r).get("address"), d.fields["address"]),
             lambda d, text: score.lines_match(d.fields["address"], text)),
    ]
    rows.append({"set": "receipts", "field": "type `receipt` first", "in_text": None, "total": len(results),
                 "extracted": sum(r["tags"][:1] == ["receipt"] for _, _, r in results)})
    return rows


def _forms(results) -> list[dict]:
    pairs = sum(len(d.pairs) for d, _, _ in results)
    found = sum(score.pair_found(_kv(r), q, a) for d, _, r in results for q, a in d.pairs)
    legible = sum(score.partial_in_text(q, _text(p)) and score.partial_in_text(a, _text(p))
                  for d, p, _ in results for q, a in d.pairs)
    items = sum(len(_kv(r)) for _, _, r in results)
    correct = sum(score.kv_item_correct(k, v, d.pairs) for d, _, r in results for k, v in _kv(r).items())
    return [
        {"set": "forms", "field": "kv recall", "extracted": found, "in_text": legible, "total": pairs,
         "ratio": found / pairs if pairs else 0.0},
        {"set": "forms", "field": "kv precision", "extracted": correct, "in_text": None, "total": items,
         "ratio": correct / items if items else 0.0},
        {"set": "forms", "field": "type `form` first", "in_text": None, "total": len(results),
         "extracted": sum(r["tags"][:1] == ["form"] for _, _, r in results)},
    ]


def _invoices(results) -> list[dict]:
    rows = [
        _row("invoices", "date", results, lambda d, p, r: _kv(r).get("date") == d.fields["date"]),
        _row("invoices", "total", results,
             lambda d, p, r: score.amount(_kv(r).get("total")) == score.amount(d.fields["total"]),
             lambda d, text: score.amount_in_text(d.fields["total"], text)),
        _row("invoices", "invoice_number", results,
             lambda d, p, r: score.same_id(_kv(r).get("invoice_number"), d.fields["invoice_number"]),
             lambda d, text: score.compact(d.fields["invoice_number"]).lstrip("#") in score.compact(text)),
        _row("invoices", "currency", results, lambda d, p, r: _kv(r).get("currency") == d.fields["currency"]),
    ]
    asked = lambda r, name: (r.get("fields_requested") or {}).get(name) or {}  # noqa: E731
    rows.append(_requested(results, "date", lambda v, t: v == t, asked))
    rows.append(_requested(results, "total", lambda v, t: score.amount(v) == score.amount(t), asked))
    rows.append(_requested(results, "invoice_number", score.same_id, asked))
    rows.append({"set": "invoices", "field": "type `invoice` first", "in_text": None, "total": len(results),
                 "extracted": sum(r["tags"][:1] == ["invoice"] for _, _, r in results)})
    return rows


def _requested(results, name, same, asked) -> dict:
    scored = [(d, r) for d, _, r in results if name in d.fields]
    return {"set": "invoices", "field": f"requested `{name}`", "in_text": None, "total": len(scored),
            "extracted": sum(bool(same(asked(r, name).get("value"), d.fields[name])) for d, r in scored)}


def _contracts(results) -> list[dict]:
    return [
        _row("contracts", "effective_date", results,
             lambda d, p, r: _kv(r).get("effective_date") == d.fields["effective_date"]),
        {"set": "contracts", "field": "type `contract` first", "in_text": None, "total": len(results),
         "extracted": sum(r["tags"][:1] == ["contract"] for _, _, r in results)},
    ]


SCORERS = {"receipts": _receipts, "forms": _forms, "invoices": _invoices, "contracts": _contracts}


def _ocr_accuracy(results, raws, readings) -> dict:
    ours = [score.char_accuracy(_text(pages), d.lines) for d, pages, _ in results]
    raw = [score.char_accuracy(raws[d.path][0], d.lines) for d, _, _ in results]
    n = len(results) or 1
    return {"ours": sum(ours) / n, "raw": sum(raw) / n, "n": len(results),
            "better": sum(a > b + 0.005 for a, b in zip(ours, raw)),
            "worse": sum(a < b - 0.005 for a, b in zip(ours, raw)),
            "ours_seconds": sum(readings[d.path].seconds for d, _, _ in results),
            "raw_seconds": sum(raws[d.path][1] for d, _, _ in results)}


def report(m: dict, version: str, *, full: bool) -> str:
    lines = [
        "# Extraction quality on the development corpus",
        "",
        f"`python -m bench.quality`{'' if full else ' (a partial run)'}: {m['files']} files, {m['pages']} pages, "
        f"local extractor; machine: {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"OCR pipeline version `{version}`; {m['cached']} of {m['files']} files read from the OCR cache.",
        "",
        "| set | field | extracted | in OCR text | total | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in m["rows"]:
        target = TARGETS.get((row["set"], row["field"]))
        if "ratio" in row:
            value = f"{row['ratio']:.2f} ({row['extracted']}/{row['total']})"
            met = "" if target is None else ("yes" if row["ratio"] >= target else "**no**")
            target_text = "" if target is None else f">= {target:.2f}"
        else:
            value = str(row["extracted"])
            met = "" if target is None else ("yes" if row["extracted"] >= target else "**no**")
            target_text = "" if target is None else f">= {target}"
        ceiling = "" if row["in_text"] is None else str(row["in_text"])
        lines.append(f"| {row['set']} | {row['field']} | {value} | {ceiling} | {row['total']} | {target_text} | {met} |")
    if m["ocr"]:
        o = m["ocr"]
        lines += [
            "",
            "## OCR on the receipts",
            "",
            "| reading | mean character accuracy | seconds (sum over files) |",
            "| --- | --- | --- |",
            f"| the service's pipeline | {o['ours']:.3f} | {o['ours_seconds']:.1f} |",
            f"| raw `tesseract FILE stdout` | {o['raw']:.3f} | {o['raw_seconds']:.1f} |",
            "",
            f"Ratio {o['ours'] / o['raw'] if o['raw'] else 0:.3f} of raw tesseract's accuracy, at "
            f"{o['ours_seconds'] / o['raw_seconds'] if o['raw_seconds'] else 0:.2f}x its time; better on "
            f"{o['better']} of {o['n']} receipts, worse on {o['worse']} (by more than 0.005).",
        ]
    lines += [
        "",
        f"Reading took {m['read_wall']:.1f} s wall on {m['jobs']} parallel readers (sum of per-file reads "
        f"{m['read_seconds']:.1f} s, as measured when each was read); extraction {m['extract_seconds']:.1f} s.",
        "",
        "## How it is scored",
        "",
        score.__doc__.split("\n\n", 1)[1].strip(),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
