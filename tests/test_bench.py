"""The benchmark's pieces run end to end on a tiny scale; no timing is asserted here."""

import pytest
from PIL import Image

from bench import corpus, run
from bench.client import percentile


def test_corpus_pages_are_letter_size_text_and_repeatable(tmp_path):
    paths = corpus.write_corpus(tmp_path, 4)
    assert [p.name.split("-")[2] for p in paths] == ["letter.png", "invoice.png", "receipt.png", "form.png"]
    with Image.open(paths[1]) as im:
        assert im.size == (1275, 1650) and im.mode == "L"
        assert im.getextrema() == (0, 255)  # black text on white paper
    assert corpus.png_bytes(corpus.make_page(7)) == corpus.png_bytes(corpus.make_page(7))
    assert corpus.png_bytes(corpus.make_page(7)) != corpus.png_bytes(corpus.make_page(11))


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50, 99, 100)


def test_three_pages_raw_and_through_the_service(tmp_path):
    out = tmp_path / "results.md"
    text = run.main(["--quick", "--only", "ocr", "--pages", "3", "--clients", "2",
                     "--workdir", str(tmp_path / "work"), "--output", str(out)])
    assert text.startswith("machine: ")
    lines = text.splitlines()
    ocr_row = next(line for line in lines if line.startswith("| 1 | OCR bound: pages/s, 3 one-page tasks"))
    cells = [c.strip() for c in ocr_row.strip("|").split("|")]
    assert float(cells[2]) > 0 and "raw `tesseract` CLI" in cells[3] and float(cells[4]) > 0
    assert cells[5] == "≥ 0.90" and cells[6] in ("yes", "**no**")
    assert any(line.startswith("| 7 | peak RSS of the service process") for line in lines)
    written = out.read_text()
    assert "python -m bench.run" in written and ocr_row in written


def test_born_digital_pages_through_the_text_layer_and_as_a_scan(tmp_path):
    text = run.main(["--quick", "--only", "pdf", "--text-pages", "2", "--workdir", str(tmp_path / "work"),
                     "--output", str(tmp_path / "results.md")])
    row = next(line for line in text.splitlines() if line.startswith("| 8 | born-digital PDF, 2 pages"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert "sources pdf_text;" in cells[1] and float(cells[2]) > 0 and float(cells[4]) > 0


def test_table_has_a_row_for_every_measure():
    cores_raw = {"rate": 5.0, "procs": 2, "page_time": 0.4, "cpu_per_page": 0.36, "rss_mb": 47.0}
    results = {
        "machine": {"cores": 2, "cpu": "x", "tesseract": "5.3.0", "python": "3.11", "os": "Linux"},
        "background": 0.0, "sizes": run.Sizes(), "workers": 8, "raw": cores_raw, "rss_mb": 90.0,
        "rss_phases": {"after one task": 60.0},
        "service": {"tasks": 60, "rate": 4.8, "own_cpu_ms": 20.0, "confidence": 93.0, "raw_rates": (4.9, 5.1),
                    "ratio": 0.96, "rounds": [0.93, 0.96, 0.97]},
        "llm": {"tasks": 100, "rate": 3.8, "ideal": 4.0, "ocr_bound": 4.5, "ocr_bounds": (4.4, 4.6), "delay": 1.0,
                "llm_concurrency": 4, "cpu": 0.77,
                "overlap": 0.8, "naive": 1.47, "figure": ["   time   cores busy"], "rss_mb": 120.0},
        "small": {"tasks": 200, "rate": 18.0, "raw_rate": 20.0, "overhead_ms": 9.0, "own_cpu_ms": 7.0, "submit_p50": 10.0,
                  "submit_p99": 30.0, "done_p50": 400.0, "done_p99": 450.0},
        "cached": {"tasks": 2000, "rate": 450.0, "own_cpu_ms": 2.0, "submit_p50": 17.0, "submit_p99": 35.0},
        "cached_json": {"tasks": 2000, "rate": 600.0, "own_cpu_ms": 1.5, "submit_p50": 12.0, "submit_p99": 30.0},
        "cached_batches": {"tasks": 2000, "per_request": 50, "requests": 40, "rate": 1800.0, "own_cpu_ms": 0.5},
        "peer_rounds": [(450.0, 900.0), (500.0, 1300.0), (400.0, 600.0)], "floor": {"rate": 1200.0, "own_cpu_ms": 0.45},
        "fairness": {"singles": 4, "pages": 100, "single_max": 2.0, "single_mean": 1.5, "pdf": 50.0, "pdf_rate": 4.5},
        "idle": {"seconds": 3.0, "threads": 30, "cpu": 0.0, "pickup_p50": 0.8, "pickup_max": 1.5},
        "pdf_text": {"pages": 40, "text_rate": 150.0, "ocr_rate": 2.0, "ratio": 75.0, "text_task": 0.5, "ocr_task": 21.0,
                     "sources": ["pdf_text"], "ocr_sources": ["ocr"]},
    }
    report = run.report(results)
    numbers = [line.split("|")[1].strip() for line in report.splitlines() if line.startswith("| ")][1:]
    assert sorted(set(numbers)) == ["1", "2", "3", "4", "5", "6", "7", "8"]
    assert "| 150.0 | 2.00 OCR of the same pages rendered at 150 dpi (whole task 21.0 s) | 75 | ≥ 50 | yes |" in report
    assert "| 4.80 | 5.00 raw `tesseract` CLI, 2 processes (mean of 4.90 before, 5.10 after) | 0.96 | ≥ 0.90 | yes |" in report
    assert "the median of 3 rounds, each against the raw runs just before and after it (ratios 0.93, 0.96, 0.97)" in report
    assert "| 0.95 | ≥ 0.85 | yes |" in report  # 3.8 / 4.0 against the LLM-bound ideal
    assert "| 450 | 900 huey | 0.50 | ≥ 1.0 | **no** |" in report  # medians of the rounds: 450 / 900
    assert "(450 vs 900; 500 vs 1300; 400 vs 600)" in report
    assert "| 3 | HTTP floor: GET /api/health requests/s" in report
    assert "| 600 | 900 huey | 0.67 |  |  |" in report  # JSON per request: informative, no target
    assert "| 1800 | 900 huey | 2.00 |  |  |" in report  # batched: a different unit of work per call
    assert "LLM-bound mix over time" in report


@pytest.mark.distributed
def test_the_distributed_benchmark_runs_on_a_tiny_scale(tmp_path, pg_server):
    """bench.distributed end to end (its own PostgreSQL and Redis, stub and real workers); no timing asserted."""
    from bench import distributed

    out = tmp_path / "dist.md"
    text = distributed.main(["--tasks", "4", "--pages", "2", "--clients", "2", "--output", str(out)])
    rows = [line for line in text.splitlines() if line.startswith("| tasks/s") or line.startswith("| OCR bound")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[3]) > 0 and cells[5] in ("yes", "**no**")
    assert "python -m bench.distributed" in out.read_text()
