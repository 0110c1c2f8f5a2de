"""Form layout: labels (with or without a colon) and their values, found by where words sit on the page.

A page is cut into cells (phrases of its lines, split again where a second label starts). A cell is a
label with its value inline ("Date: 12/10/98", "STUDY NUMBER I-7016.401"), a label alone ("FROM:",
"Fax Number"), or text. A lone label takes the text to its right on the same row, else the text below
it in its column; a row of lone labels is a header row over a row (or a table) of values. A value runs
on over the lines right under it, and stops at the next label. Labels without a colon count only when
they read as labels: short, capitalised, and holding a word forms use for their fields.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .dates import fold
from .labels import BLANK, Pair, clean_value, split_label
from .layout import Page, Span, Word, phrases, union

# Words that name a form's fields; a label without a colon needs one of them.
FIELD_WORDS = frozenset("""
name names date dated number numbers no nos num to from re subject cc bcc attn attention company firm
organization organisation phone telephone tel fax facsimile voice pages page address city state zip
country code title department dept account accounts sender recipient recipients reference ref signature
comments comment message amount total type description quantity qty item items volume stores store
division div brand brands media value issue expiration expires cost center centre study report reason
approval approvals approved class structure compound location time period project product products price
job order invoice client customer contact email mail office room file case court counsel plaintiff
defendant served status remarks notes note est estimated circulation initiator assigned required
requested budget fee payment due id serial model sex age birth mobile cell ext extension position manager
supervisor prepared submitted authorized authorised signed checked copies distribution instructions
purpose source weight size unit units rep reps event events samples market region territory area
district program programme telex dates agency vendor supplier buyer contract category sponsor
""".split())
# Short words that name a field only as (nearly) the whole label: "TO", "FROM", "RE", "CC", "NO."
_SHORT_WORDS = frozenset("to from re cc bcc attn no nos num by".split())
FIELD_WORDS = FIELD_WORDS - _SHORT_WORDS
_FUNCTION = frozenset("of the and or for to in on at by per if as a an with this from your our s".split())
_SHORT_LABELS = {"to", "re", "cc", "no", "id", "by", "at", "tel", "ph", "fax", "date"}
_STRIP = " #,.;:‘’'\"“”-_~|*©@•+=»«>[]{}"
_WORD = re.compile(r"[a-z]+")
_GLUED = re.compile(r"^([A-Z][A-Z/&#.]+)([A-Z][a-z].*)$")  # "DATEOctober" -> "DATE" + "October"
_CAPS_WORD = re.compile(r"^[\W_]*[A-Z][A-Z/&#.()'-]*[\W_]*$|^[/&#(+—–-]+$")
_INLINE_COLON = re.compile(r"^([A-Za-z][A-Za-z.#]+:)([^/\s].*)$")
_BOX = re.compile(r"^\s*[©@☐□■❑☑☒]\s")  # a check box read in front of its label ("© Media type")
_MARK = re.compile(r"^[xX✓✔☑☒]$")


@dataclass
class Cell:
    span: Span
    label: str | None = None  # the label's text, without its colon
    value: Span | None = None  # a value on the cell itself, after the label
    colon: bool = False
    row: int = 0
    checkbox: bool = False  # a check box printed in front of the label: its value is whatever is right of it  # index of the page line the cell came from
    used: bool = False

    @property
    def box(self):
        return self.span.box

    @property
    def lone(self) -> bool:
        return self.label is not None and self.value is None


def form_key(label: str) -> str:
    """A form label as a snake_case key in its own words: "Fax No." -> "fax_no", "# REPS" -> "number_reps"."""
    text = fold(label).replace("e-mail", "email").replace("#", " number ").replace("n°", " number ")
    return "_".join(re.sub(r"[^a-z0-9]+", " ", text).split())[:60] or "value"


def field_words(text: str) -> bool:
    words = _WORD.findall(fold(text))
    return any(w in FIELD_WORDS or w in _SHORT_WORDS and len(words) <= 2 for w in words)


def label_like(text: str) -> bool:
    """Short, capitalised, mostly letters, no figures: how a printed field label reads (a note in
    parentheses aside: "Number of Pages (this page included)"). Capitals running into mixed case
    ("REASON FOR THE AMENDMENT Request from sponsor") are a label and its value; lowercase words
    other than "of", "the", ... before the last word make a sentence."""
    text = re.sub(r"\s*\([^)\d]*\)?\s*", " ", text).strip(_STRIP) or text.strip(_STRIP)
    words = text.split()
    letters = sum(c.isalpha() for c in text)
    if not words or letters < 2 or len(words) > 10 or letters < 0.65 * len(text.replace(" ", "")):
        return False
    if sum(c.isdigit() for c in text) > 1 or not text[0].isupper() or text[-1:] == "!":
        return False
    if text.isupper():
        return True
    plain = [re.sub(r"[^A-Za-z]", "", w) for w in words]
    caps = sum(len(w) >= 2 and w.isupper() for w in plain)
    mixed = sum(len(w) >= 3 and not w.isupper() and w.lower() not in _FUNCTION for w in plain)
    if caps >= 2 and mixed:
        return False
    lower = [i for i, w in enumerate(plain) if w and w.islower() and w not in _FUNCTION]
    return not lower or lower == [len(words) - 1]


def weak_label(text: str) -> bool:
    """A label without a colon: label-like and naming a field."""
    return label_like(text) and field_words(text)


def cells(page: Page, lh: float) -> list[Cell]:
    out = []
    for row, line in enumerate(page.lines):
        parts = phrases(line)
        for phrase in parts:
            for span in _split_inner(_unglue(phrase)):
                cell = _classify(span, row)
                if cell.lone and not cell.colon and len(parts) == 1 and _centred(span, page):
                    cell = Cell(span, None, None, False, row)  # a title ("FACSIMILE COVER SHEET"), not a label
                if cell.label is not None and sum(c.isalpha() for c in cell.label) < 3 \
                        and fold(cell.label).strip(" .#") not in _SHORT_LABELS:
                    cell = Cell(span, None, None, False, row)  # "Xe: Gad": noise, not a label
                out.append(cell)
    return out


def _centred(span: Span, page: Page) -> bool:
    box = span.box
    return bool(box and page.width) and abs((box[0] + box[2]) / 2 - page.width / 2) < 0.06 * page.width


def _unglue(span: Span) -> Span:
    """Words OCR glued to a label: "NAME_Induction" and "DATEOctober" become two words each."""
    words = []
    for w in span.words:
        parts = [p for p in re.split(r"_+", w.text) if p] if "_" in w.text.strip("_") else [w.text]
        if len(parts) == 1 and (m := _INLINE_COLON.match(w.text)):
            parts = [m[1], m[2]]  # "Fax:614-466-5087"
        if len(parts) == 1 and (m := _GLUED.match(w.text)) and len(m[1]) >= 2:
            parts = [m[1], m[2]]
        if len(parts) == 1:
            words.append(w)
            continue
        total = sum(len(p) for p in parts) or 1
        left, width, pos = (w.box[0], w.box[2] - w.box[0], 0) if w.box else (0, 0, 0)
        for p in parts:
            box = (left + width * pos // total, w.box[1], left + width * (pos + len(p)) // total, w.box[3]) if w.box else None
            words.append(Word(p, box, w.confidence))
            pos += len(p)
    return span if len(words) == len(span.words) else Span(span.page, words, confidence=span.confidence)


def _split_inner(span: Span) -> list[Span]:
    """ "To: Sam Zolot MANUFACTURER: B&W" -> "To: Sam Zolot", "MANUFACTURER: B&W": a value stops at the next label."""
    words, cuts = span.words, [0]
    for i, w in enumerate(words):
        if i < 2 or not w.text.endswith(":") or len(w.text) < 3:
            continue
        start = i  # the label: up to four capitalised words ending at this one
        while start > cuts[-1] + 1 and i - start < 3 and _CAPS_WORD.match(words[start - 1].text):
            start -= 1
        head = " ".join(x.text for x in words[start:i + 1])
        before = " ".join(x.text for x in words[cuts[-1]:start])
        in_value = ":" in before or re.search(r"[a-z]", before) and head.isupper()  # "Mllw. South DIVISION NAME:"
        if start > cuts[-1] + 1 and head[0].isupper() and (head.isupper() or field_words(head) or start == i) \
                and in_value:
            cuts.append(start)  # only a value is cut at a label: "Label: value NEXT LABEL: value"
    if len(cuts) == 1:
        return [span]
    bounds = cuts + [len(words)]
    return [Span(span.page, words[a:b], confidence=span.confidence) for a, b in zip(bounds, bounds[1:])]


def _classify(span: Span, row: int) -> Cell:
    split = split_label(span.text)
    if split:
        label, value = split
        value = value.strip()
        if not value or BLANK.fullmatch(value):
            return Cell(span, label, None, True, row)
        colon = span.text.index(":") if ":" in span.text else span.text.index(";")
        tail = span.tail(colon + 1)
        return Cell(span, label, tail if tail.words else None, True, row)
    if _BOX.match(span.text) and label_like(span.text):
        return Cell(span, span.text.strip(_STRIP), None, False, row, checkbox=True)
    if weak_label(span.text):
        return Cell(span, span.text.strip(_STRIP), None, False, row)
    # "STUDY NUMBER I-7016.401", "No. of Pages 37": a label naming a field, then the value in figures
    # or (after capitals) in mixed case
    words = span.words
    caps = 0
    while caps < len(words) and _CAPS_WORD.match(words[caps].text) and not re.search(r"\d", words[caps].text):
        caps += 1
    figures = next((i for i, w in enumerate(words) if re.search(r"\d", w.text)), len(words))
    for n in dict.fromkeys((caps, figures)):
        if not 0 < n < len(words) or n == figures != caps and n < 2:
            continue  # "Page 14" is text; "No. of Pages 37" a label and its value
        head = " ".join(w.text for w in words[:n])
        rest = [w for w in words[n:] if not BLANK.fullmatch(w.text)]
        if rest and weak_label(head) and sum(c.isalpha() for c in head) >= 3 and re.search(r"[a-z\d]", rest[0].text):
            return Cell(span, head.strip(_STRIP), Span(span.page, rest, confidence=span.confidence), False, row)
    return Cell(span, None, None, False, row)


def form_pairs(page: Page) -> list[Pair]:
    """Every label -> value pair of a form page, by the rules in this module's docstring."""
    lh = _line_height(page)
    units = cells(page, lh)
    out: list[Pair] = []
    for cell in units:
        if cell.value is not None:
            out.append(_pair(cell, _run_on(cell.value, cell, units, lh), page))
    by_row: dict[int, list[Cell]] = {}
    for cell in units:
        if cell.box:
            by_row.setdefault(cell.row, []).append(cell)
    for row in sorted(by_row):
        heads = _header(by_row[row], units)
        if heads:
            out += [_pair(head, span, page) for head, span in _table(heads, units, lh)]
    for cell in units:
        if not cell.lone or not cell.box or cell.used:
            continue
        right = _right(cell, units)
        if right is not None and cell.checkbox and not right.colon and not right.checkbox:
            right.label, right.value = None, None
        if right is not None and right.label is None and not right.used:
            right.used = True
            out.append(_pair(cell, _run_on(right.span, cell, units, lh), page))
            continue
        under = _below(cell, units, lh, reach=2.6)
        if under is None or under.label is not None or under.used:
            continue
        under.used = True
        out.append(_pair(cell, _run_on(under.span, cell, units, lh, below_label=True), page))
    return [p for p in out if p.value and re.search(r"[A-Za-z0-9]", p.value)]


def _header(row: list[Cell], units: list[Cell]) -> list[Cell]:
    """A row of two or more lone labels, none with a value to its right: the head of a table."""
    if any(c.label is not None and c.value is not None for c in row):
        return []
    heads = sorted((c for c in row if c.lone), key=lambda c: c.box[0])
    if len(heads) < 2 or any(c.checkbox for c in heads):
        return []
    for head in heads:
        right = _right(head, units)
        if right is not None and right.label is None:
            return []
    return heads


def _table(heads: list[Cell], units: list[Cell], lh: float, *, max_rows: int = 20) -> list[tuple[Cell, Span]]:
    """The rows under a header: each word goes to the column whose label starts left of it; a row
    with one column filled right under the previous row continues that cell ("Brown & Williamson" /
    "Tobacco Corp."). Down to a label, a wide gap or the table's end."""
    top = max(h.box[3] for h in heads)
    left_edge = heads[0].box[0] - 2 * lh
    below = sorted((c for c in units if c.box and (c.box[1] + c.box[3]) / 2 > top and c.box[2] > left_edge),
                   key=lambda c: (c.box[1] + c.box[3]) / 2)
    rows: list[list[Cell]] = []
    for c in below:
        if rows and _same_row(_union_box(rows[-1]), c.box):
            rows[-1].append(c)
        else:
            rows.append([c])
    cells_out: list[tuple[Cell, list[Word]]] = []
    last_bottom, first_gap, previous = top, None, None
    for row in rows[:max_rows]:
        box = _union_box(row)
        gap = box[1] - last_bottom
        if gap > (2.6 * lh if first_gap is None else max(2 * lh, 1.5 * first_gap)):
            break
        if any(c.label is not None or c.used for c in row):
            break
        first_gap = gap if first_gap is None else first_gap
        columns: dict[int, list[Word]] = {}
        for c in row:
            for w in c.span.words:
                if w.box:
                    i = _column_of(heads, (w.box[0] + w.box[2]) / 2, lh)
                    if i is not None:
                        columns.setdefault(i, []).append(w)
        if not columns:
            break
        for c in row:
            c.used = True
        if previous is not None and len(columns) == 1 and gap < 0.6 * lh and next(iter(columns)) in previous:
            only = next(iter(columns))
            previous[only].extend(sorted(columns[only], key=lambda w: w.box[0]))
        else:
            previous = {}
            for i, words in sorted(columns.items()):
                words.sort(key=lambda w: w.box[0])
                cells_out.append((heads[i], words))
                previous[i] = words
        last_bottom = box[3]
    return [(head, Span(head.span.page, words)) for head, words in cells_out]


def _column_of(heads: list[Cell], x: float, lh: float) -> int | None:
    """The column of a word's centre: the last header label starting left of it (with a line of slack)."""
    found = None
    for i, head in enumerate(heads):
        if head.box[0] - lh <= x:
            found = i
    if found is None or x > heads[-1].box[2] + 6 * lh and found == len(heads) - 1:
        return None
    return found


def _union_box(cells_: list[Cell]):
    return union(c.box for c in cells_)


def _line_height(page: Page) -> float:
    """The median height of the page's words: OCR line boxes of handwriting run taller than the print."""
    heights = sorted(w.box[3] - w.box[1] for line in page.lines for w in line.words if w.box and w.confidence >= 50)
    return float(max(heights[len(heights) // 2], 8)) if heights else max(page.line_height, 8.0)


def _pair(cell: Cell, value: Span, page: Page) -> Pair:
    return Pair(cell.label, clean_value(value.text), page.number, value.box, cell.box)


def _right(cell: Cell, units: list[Cell]) -> Cell | None:
    """The nearest cell on the label's row right of it (a row: half of the smaller height shared)."""
    box = cell.box
    found = [c for c in units if c is not cell and c.box and c.box[0] >= box[2] - 2 and _same_row(box, c.box)]
    return min(found, key=lambda c: c.box[0]) if found else None


def _same_row(a, b) -> bool:
    shared = min(a[3], b[3]) - max(a[1], b[1])
    return shared >= 0.5 * min(a[3] - a[1], b[3] - b[1])


def _below(cell: Cell, units: list[Cell], lh: float, *, reach: float) -> Cell | None:
    """The nearest cell under the label that shares some of its width, within `reach` line heights."""
    box = cell.box
    best = None
    for c in units:
        cb = c.box
        if c is cell or not cb or (cb[1] + cb[3]) / 2 <= box[3] or cb[1] < (box[1] + box[3]) / 2:
            continue
        if cb[1] - box[3] > reach * lh or min(cb[2], box[2]) - max(cb[0], box[0]) <= 0:
            continue
        if best is None or cb[1] < best.box[1]:
            best = c
    return best


def _under_column(value: Span, label: Span) -> Span:
    """Of a value wider than its header label, only the words in the label's column."""
    lb = label.box
    if not lb or not value.box or len(value.words) < 2 or value.box[2] - value.box[0] < 1.5 * (lb[2] - lb[0]):
        return value
    slack = max(lb[3] - lb[1], 1)
    kept = [w for w in value.words if w.box and w.box[2] > lb[0] - slack and w.box[0] < lb[2] + slack]
    return Span(value.page, kept, confidence=value.confidence) if kept else value


def _run_on(value: Span, label: Cell, units: list[Cell], lh: float, *, below_label: bool = False,
            max_lines: int = 10) -> Span:
    """The value and the lines that continue it right under it (same left edge, no gap, no label)."""
    words, last = list(value.words), value.box
    if not last:
        return value
    left = last[0]
    lefts = (left, label.box[0]) if below_label and label.box else (left,)
    for _ in range(max_lines):
        nxt = None
        for c in units:
            cb = c.box
            if c.used or not cb or (cb[1] + cb[3]) - (last[1] + last[3]) < lh or cb[1] - last[3] > 0.8 * lh:
                continue  # centres at least half a line apart, and no blank line between
            if not any(abs(cb[0] - x) <= 1.5 * lh for x in lefts):
                continue
            if nxt is None or cb[1] < nxt.box[1]:
                nxt = c
        if nxt is None or nxt.label is not None or _anything_left_of(nxt, units):
            break
        nxt.used = True
        words += nxt.span.words
        last = nxt.box
    return value if len(words) == len(value.words) else Span(value.page, words, confidence=value.confidence)


def _anything_left_of(cell: Cell, units: list[Cell]) -> bool:
    """The cell is not where a line of a value starts: something sits on its row to its left."""
    return any(c is not cell and c.row == cell.row and c.box and c.box[2] <= cell.box[0] + 2 for c in units)
