"""The development corpus: where it is, its documents and their ground truth, read as plain records."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS_SETTING = "DOCPROC_CORPUS"
SETS = ("receipts", "forms", "invoices", "contracts")


def corpus_dir() -> Path:
    """DOCPROC_CORPUS, else ../shared/corpus beside the repository (beside its main checkout, in a git worktree)."""
    raw = os.environ.get(CORPUS_SETTING)
    if raw:
        return Path(raw)
    default = REPO.parent / "shared" / "corpus"
    main = _main_checkout(REPO)
    if not default.is_dir() and main is not None and (main.parent / "shared" / "corpus").is_dir():
        return main.parent / "shared" / "corpus"
    return default


def _main_checkout(repo: Path) -> Path | None:
    """The main working tree of a git worktree: its `.git` file names the common git directory."""
    marker = repo / ".git"
    if not marker.is_file():
        return None
    text = marker.read_text(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return None
    gitdir = (repo / text.split(":", 1)[1].strip()).resolve()
    common = gitdir / "commondir"
    root = (gitdir / common.read_text().strip()).resolve() if common.is_file() else gitdir
    return root.parent


def missing_reason(root: Path) -> str | None:
    """Why the corpus cannot be used, or None when every set is there."""
    if not root.is_dir():
        return f"no corpus at {root} (set {CORPUS_SETTING} to its folder)"
    absent = [s for s in SETS if not (root / s).is_dir()]
    if absent:
        return f"corpus at {root} lacks {', '.join(absent)}"
    return None


@dataclass
class Document:
    """One corpus file and its truth: `fields` maps a scored field to its true value."""

    set: str
    name: str
    path: Path
    kind: str  # the extraction kind a user would ask for: "document" or "form"
    fields: dict = field(default_factory=dict)
    pairs: list[tuple[str, str]] = field(default_factory=list)  # forms: (question, answer)
    lines: list[str] = field(default_factory=list)  # receipts: the transcript of every printed line


def load(root: Path, *, limit: int | None = None) -> dict[str, list[Document]]:
    """Every set's documents, sorted by name; `limit` keeps the first few of each set."""
    loaders = {"receipts": _receipts, "forms": _forms, "invoices": _invoices, "contracts": _contracts}
    return {name: loader(root / name)[:limit] for name, loader in loaders.items()}


def _receipts(folder: Path) -> list[Document]:
    docs = []
    for image in sorted(folder.glob("*.jpg")):
        truth = json.loads(image.with_suffix(".json").read_text())
        lines = []
        with open(folder / f"{image.stem}.lines.csv", newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if len(row) >= 9:
                    lines.append(",".join(row[8:]).strip())  # the text may hold commas itself
        docs.append(Document("receipts", image.stem, image, "document",
                             fields={k: truth.get(k) for k in ("date", "total", "company", "address")},
                             lines=[line for line in lines if line]))
    return docs


def _forms(folder: Path) -> list[Document]:
    docs = []
    for image in sorted(folder.glob("*.png")):
        entities = {e["id"]: e for e in json.loads(image.with_suffix(".json").read_text())["form"]}
        pairs = []
        for e in entities.values():
            for source, target in e["linking"]:
                q, a = entities.get(source), entities.get(target)
                if (source == e["id"] and q and a and q["label"] == "question" and a["label"] == "answer"
                        and q["text"].strip() and a["text"].strip()):
                    pairs.append((q["text"].strip(), a["text"].strip()))
        docs.append(Document("forms", image.stem, image, "form", pairs=pairs))
    return docs


def _invoices(folder: Path) -> list[Document]:
    docs = []
    for pdf in sorted(folder.glob("*.pdf")):
        truth = json.loads(pdf.with_suffix(".json").read_text())[0]
        fields = {"date": truth.get("date"), "total": truth.get("amount"),
                  "invoice_number": truth.get("invoice_number"), "currency": truth.get("currency")}
        docs.append(Document("invoices", pdf.stem, pdf, "document",
                             fields={k: v for k, v in fields.items() if v not in (None, "")}))
    return docs


def _contracts(folder: Path) -> list[Document]:
    docs = []
    for row in (folder / "truth.tsv").read_text().splitlines():
        name, *facts = row.split("\t")
        if not name.strip():
            continue
        values: dict[str, list[str]] = {}
        for fact in " ".join(facts).split():
            key, _, value = fact.partition("=")
            values.setdefault(key, []).append(value.replace("_", " "))
        fields = {"effective_date": values.get("effective_date", [None])[0]}
        docs.append(Document("contracts", Path(name).stem, folder / name, "document",
                             fields={k: v for k, v in fields.items() if v}))
    return sorted(docs, key=lambda d: d.name)
