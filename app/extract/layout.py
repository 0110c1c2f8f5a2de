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
    """The page's words in rows, top to bottom, each row left to right: a label and its amount printed
    in separate columns (separate OCR blocks) share a row; a tall OCR line spanning two printed rows
    is split back into them. Made once per page (several rules read them)."""
    made = page.__dict__.get("_rows")
    if made is None:
        made = page.__dict__["_rows"] = _rows(page)
    return list(made)


def _rows(page: Page) -> list[Span]:
    if not page.has_boxes:
        return list(page.lines)
    words = sorted((w for line in page.lines for w in line.words if w.box), key=lambda w: (w.box[1] + w.box[3]) / 2)
    bands: list[list] = []  # [top, bottom, words]: the band of the row's first word
    for word in words:
        for band in reversed(bands[-6:]):
            if same_row((0, band[0], 0, band[1]), word.box):
                band[2].append(word)
                break
        else:
            bands.append([word.box[1], word.box[3], [word]])
    out = []
    for _, _, members in bands:
        members.sort(key=lambda w: w.box[0])
        scored = [w.confidence for w in members if w.confidence >= 0]
        out.append(Span(page.number, members, confidence=sum(scored) / len(scored) if scored else -1.0))
    out.sort(key=lambda s: (s.box[1] + s.box[3]) / 2)
    return out


def right_of(label: Span, candidates: list[Span], *, overlap: float = 0.5) -> Span | None:
    """The nearest phrase on the label's row that starts right of it."""
    found = all_right_of(label, candidates, overlap=overlap)
    return found[0] if found else None


def all_right_of(label: Span, candidates: list[Span], *, overlap: float = 0.5) -> list[Span]:
    """The phrases on the label's row that start right of it, nearest first."""
    box = label.box
    if not box:
        return []
    found = [c for c in candidates
             if c is not label and c.box and c.box[0] >= box[2] - 2 and same_row(box, c.box, overlap)]
    return sorted(found, key=lambda c: c.box[0])


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


def confidence_in(page: Page, box: Box | None) -> float:
    """Mean confidence of the page's words whose centres lie in the box (-1 when unknown)."""
    if not box:
        return -1.0
    found = [w.confidence for line in page.lines for w in line.words
             if w.box and w.confidence >= 0 and box[0] <= (w.box[0] + w.box[2]) / 2 <= box[2]
             and box[1] <= (w.box[1] + w.box[3]) / 2 <= box[3]]
    return sum(found) / len(found) if found else -1.0
