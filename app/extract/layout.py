"""The geometry the rules read: words with boxes, grouped into lines, phrases and rows of a page.

Pages come as OCR results (app.ocr.PageText, or its dict form) whose `lines` carry word boxes; a
page known only as text gets lines without boxes, so every rule still runs (without provenance).
Text positions map back to words: a match in a line's text gives the box of the words under it.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

Box = tuple[int, int, int, int]  # left, top, right, bottom: pixels of the page image, y down


@dataclass
class Word:
    text: str
    box: Box | None
    confidence: float = -1.0


@dataclass
class Span:
    """Words read left to right as one text; `starts[i]` is where word i begins in `text`."""

    page: int  # 1-based
    words: list[Word]
    text: str = ""
    starts: list[int] = field(default_factory=list)
    confidence: float = -1.0

    def __post_init__(self):
        if not self.text:
            self.starts, pos = [], 0
            for w in self.words:
                self.starts.append(pos)
                pos += len(w.text) + 1
            self.text = " ".join(w.text for w in self.words)

    @property
    def box(self) -> Box | None:
        return union(w.box for w in self.words)

    @property
    def height(self) -> float:
        box = self.box
        return float(box[3] - box[1]) if box else 0.0

    def box_of(self, start: int, end: int) -> Box | None:
        """The box of the words that characters start..end of the text fall on."""
        picked = [w.box for w, s in zip(self.words, self.starts) if s < end and s + len(w.text) > start]
        return union(picked)

    def tail(self, start: int) -> "Span":
        """The words from character `start` on (the value after a label)."""
        kept = [w for w, s in zip(self.words, self.starts) if s + len(w.text) > start]
        return Span(self.page, kept, confidence=self.confidence)


def union(boxes) -> Box | None:
    boxes = [b for b in boxes if b]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


@dataclass
class Page:
    number: int  # 1-based
    width: int
    height: int
    lines: list[Span]
    text: str

    @property
    def has_boxes(self) -> bool:
        return any(line.box for line in self.lines)

    @property
    def line_height(self) -> float:
        heights = [line.height for line in self.lines if line.box]
        return statistics.median(heights) if heights else 0.0


def _get(page, name, default=None):
    return page.get(name, default) if isinstance(page, dict) else getattr(page, name, default)


def read_pages(pages) -> list[Page]:
    """Our view of the extractor's input: OCR pages with geometry, or bare strings."""
    out = []
    for number, page in enumerate(pages, start=1):
        if isinstance(page, str):
            page = {"text": page}
        raw_lines = _get(page, "lines") or []
        lines = []
        for raw in raw_lines:
            words = [Word(str(w["text"]), _box(w.get("box")), float(w.get("confidence", -1)))
                     for w in raw.get("words") or [] if str(w.get("text", "")).strip()]
            if not words:  # lines without their words: one word per token, the line's box for each
                box = _box(raw.get("box"))
                words = [Word(t, box, float(raw.get("confidence", -1))) for t in str(raw.get("text", "")).split()]
            if words:
                lines.append(Span(number, words, confidence=float(raw.get("confidence", -1))))
        text = str(_get(page, "text", "") or "")
        if not lines:
            lines = [Span(number, [Word(t, None) for t in line.split()]) for line in text.splitlines() if line.split()]
        out.append(Page(number, int(_get(page, "width", 0) or 0), int(_get(page, "height", 0) or 0), lines,
                        text or "\n".join(line.text for line in lines)))
    return out


def _box(raw) -> Box | None:
    if not raw or len(raw) != 4:
        return None
    return tuple(int(v) for v in raw)


def phrases(line: Span, gap_factor: float = 1.2) -> list[Span]:
    """A line cut where the space between two words is wider than `gap_factor` line heights (columns)."""
    if not line.box or len(line.words) < 2:
        return [line]
    limit = max(line.height, 1.0) * gap_factor
    out, current = [], [line.words[0]]
    for prev, word in zip(line.words, line.words[1:]):
        if prev.box and word.box and word.box[0] - prev.box[2] > limit:
            out.append(Span(line.page, current, confidence=line.confidence))
            current = []
        current.append(word)
    out.append(Span(line.page, current, confidence=line.confidence))
    return out


def same_row(a: Box, b: Box, overlap: float = 0.5) -> bool:
    """Vertical overlap of at least `overlap` of the smaller height."""
    shared = min(a[3], b[3]) - max(a[1], b[1])
    return shared >= overlap * min(a[3] - a[1], b[3] - b[1])


def rows(page: Page) -> list[Span]:
    """Lines that share a row (label and amount in separate OCR blocks) joined left to right, top to bottom."""
    if not page.has_boxes:
        return list(page.lines)
    groups: list[list[Span]] = []
    for line in sorted((ln for ln in page.lines if ln.box), key=lambda ln: (ln.box[1] + ln.box[3]) / 2):
        for group in groups:
            if any(same_row(line.box, other.box) for other in group):
                group.append(line)
                break
        else:
            groups.append([line])
    out = []
    for group in groups:
        group.sort(key=lambda ln: ln.box[0])
        words = [w for ln in group for w in ln.words]
        out.append(Span(page.number, words, confidence=min(ln.confidence for ln in group)))
    out.sort(key=lambda s: (s.box[1] + s.box[3]) / 2)
    return out


def right_of(label: Span, candidates: list[Span], *, overlap: float = 0.5) -> Span | None:
    """The nearest phrase on the label's row that starts right of it."""
    box = label.box
    if not box:
        return None
    best = None
    for c in candidates:
        cb = c.box
        if c is label or not cb or cb[0] < box[2] - 2 or not same_row(box, cb, overlap):
            continue
        if best is None or cb[0] < best.box[0]:
            best = c
    return best


def below(label: Span, candidates: list[Span], *, reach: float = 2.2) -> Span | None:
    """The nearest phrase under the label that overlaps it horizontally, within `reach` line heights."""
    box = label.box
    if not box:
        return None
    height = max(box[3] - box[1], 1)
    best = None
    for c in candidates:
        cb = c.box
        if c is label or not cb or cb[1] < box[3] - height * 0.3 or cb[1] - box[3] > reach * height:
            continue
        if min(cb[2], box[2]) - max(cb[0], box[0]) <= 0:
            continue
        if best is None or cb[1] < best.box[1]:
            best = c
    return best


def under_column(value: Span, label: Span) -> Span:
    """Of a wide value line under a label, only the words in the label's column (a table's header cell)."""
    lb = label.box
    if not lb or not value.box or len(value.words) < 2 or value.box[2] - value.box[0] < 1.5 * (lb[2] - lb[0]):
        return value
    slack = max(lb[3] - lb[1], 1)
    kept = [w for w in value.words if w.box and w.box[2] > lb[0] - slack and w.box[0] < lb[2] + slack]
    return Span(value.page, kept, confidence=value.confidence) if kept else value
