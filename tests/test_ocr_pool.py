"""The fair page scheduler of the OCR slots, with a recording page reader in place of tesseract."""
import queue
import threading

from app.ocr_pool import OcrPool


def test_a_new_task_goes_ahead_of_a_task_already_being_served():
    started, gate = queue.Queue(), threading.Event()

    def read_page(label, lang):
        started.put(label)
        if label == "long-1":
            gate.wait(10)  # hold the only slot until the short tasks are queued
        return label

    pool = OcrPool(read_page, concurrency=1)
    pool.start()
    try:
        long = pool.submit("long", 5, [f"long-{n}" for n in range(1, 5)], "eng")
        assert started.get(timeout=10) == "long-1"
        short_a = pool.submit("a", 5, ["a-1"], "eng")
        short_b = pool.submit("b", 5, ["b-1"], "eng")
        gate.set()
        order = ["long-1"] + [started.get(timeout=10) for _ in range(5)]
        assert short_a.next_result(10)[1] == "a-1" and short_b.next_result(10)[1] == "b-1"
        assert sorted(long.next_result(10)[1] for _ in range(4)) == [f"long-{n}" for n in range(1, 5)]
    finally:
        pool.stop(timeout=5)
    # Both one-page tasks come before the long task's second page, in the order they came.
    assert order == ["long-1", "a-1", "b-1", "long-2", "long-3", "long-4"]


def test_higher_priority_pages_come_first():
    started, gate = queue.Queue(), threading.Event()

    def read_page(label, lang):
        started.put(label)
        if label == "low-1":
            gate.wait(10)
        return label

    pool = OcrPool(read_page, concurrency=1)
    pool.start()
    try:
        pool.submit("low", 1, [f"low-{n}" for n in range(1, 4)], "eng")
        assert started.get(timeout=10) == "low-1"
        urgent = pool.submit("urgent", 9, [f"urgent-{n}" for n in range(1, 3)], "eng")
        gate.set()
        order = [started.get(timeout=10) for _ in range(4)]
        assert {urgent.next_result(10)[1] for _ in range(2)} == {"urgent-1", "urgent-2"}
    finally:
        pool.stop(timeout=5)
    assert order == ["urgent-1", "urgent-2", "low-2", "low-3"]
