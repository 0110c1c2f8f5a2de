"""The corpus quality benchmark runs end to end on a slice of the corpus; its figures are computed, not fixed."""
import re

import pytest

from bench import quality, quality_corpus, quality_score


def test_a_slice_of_every_set(corpus_root, tmp_path):
    out = tmp_path / "QUALITY.md"
    text = quality.main(["--limit", "1", "--output", str(out)])
    assert out.read_text() == text
    rows = [line for line in text.splitlines() if re.match(r"\| (receipts|forms|invoices|contracts) \|", line)]
    fields = {tuple(c.strip() for c in row.strip("|").split("|")[:2]) for row in rows}
    for key in quality.TARGETS:
        assert key in fields
    assert ("invoices", "requested `invoice_number`") in fields
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        extracted, total = int(cells[2].split()[-1].strip("()").split("/")[0]), int(cells[4])
        assert 0 <= extracted <= max(total, 1)
        assert cells[6] in ("", "yes", "**no**")
    accuracy = re.search(r"\| the service's pipeline \| (\d\.\d{3}) \|", text)
    raw = re.search(r"\| raw `tesseract FILE stdout` \| (\d\.\d{3}) \|", text)
    assert accuracy and raw and 0 < float(accuracy[1]) <= 1 and 0 < float(raw[1]) <= 1


def test_truth_of_every_set_loads(corpus_root):
    docs = quality_corpus.load(corpus_root)
    assert {name: len(items) > 0 for name, items in docs.items()} == dict.fromkeys(quality_corpus.SETS, True)
    receipt = docs["receipts"][0]
    assert receipt.lines and set(receipt.fields) == {"date", "total", "company", "address"}
    assert quality_score.day_first_iso(receipt.fields["date"]) is not None
    assert all(q and a for d in docs["forms"] for q, a in d.pairs)


@pytest.mark.parametrize("printed, iso", [("25/12/2018", "2018-12-25"), ("12-01-19", "2019-01-12"),
                                          ("18 MAR 2018", "2018-03-18"), ("20180304", "2018-03-04")])
def test_printed_receipt_dates(printed, iso):
    assert quality_score.day_first_iso(printed) == iso


def test_scoring_rules():
    assert quality_score.similar("SAM SAM TRADING CO.", "sam sam trading co")
    assert not quality_score.similar("SAM SAM TRADING", "UNIHAKKA INTERNATIONAL")
    paragraph = "This message is intended only for the use of the individual or entity to whom it is addressed " * 3
    assert quality_score.similar(paragraph.replace("intended", "intendd").replace("whom", "wh0m"), paragraph)
    assert quality_score.amount_in_text("4904.94", "Totaal 4.904,94 EUR")
    assert not quality_score.amount_in_text("14.10", "TOTAL 14.01")
    assert quality_score.pair_found({"date_of_birth": "1 May"}, "Date of Birth:", "1 May")
    assert quality_score.char_accuracy("TOTAL RM 14.10", ["TOTAL", "RM 14.10"]) == 1.0


def test_the_ocr_cache_key_covers_every_module_that_shapes_a_reading():
    """The app modules the page reading imports, directly or not (its passes, deskew, PDF pages), are all hashed."""
    from bench import quality_ocr
    found, todo = set(), ["app/ocr.py", "app/pages.py"]
    while todo:
        name = todo.pop()
        path = quality_ocr.REPO / name
        if name in found or not path.exists() or name == "app/errors.py":  # errors: messages only
            continue
        found.add(name)
        source = path.read_text()
        for names in re.findall(r"^from (?:app|\.) import ([\w, ]+)", source, re.M):
            todo += [f"app/{m.strip()}.py" for m in names.split(",")]
        todo += [f"app/{m}.py" for m in re.findall(r"^from (?:app)?\.(\w+) import", source, re.M)]
    assert {"app/deskew.py", "app/ocr_passes.py", "app/pdf.py"} <= found
    assert found <= set(quality_ocr._PIPELINE_SOURCES)
