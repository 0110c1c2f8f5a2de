"""Form layout: labels (with or without a colon) and their values, found by where words sit on the page.

A page is read as cells (app/extract/form_cells.py). A lone label takes the text to its right on the
same row (up to the next label), else the text below it in its column that no nearer label owns; a row
of lone labels is a header row over a row (or a table) of values. A value runs on over the lines right
under it and stops at the next label; a label printed over two lines is read whole. Short alike
values stacked a blank line apart under a label are a list, one value each.
"""
from __future__ import annotations

import re

from .form_cells import STRIP, Cell, cells
from .labels import Pair, clean_value
from .layout import Page, Span, Word, union

REACH = 3.5  # line heights from a label down to the value under it


class TableCell(Pair):
    """A value read in a table's column under its header: where a value is expected, so kept even when
    OCR doubts the handwriting in it."""


def form_pairs(page: Page) -> list[Pair]:
    """Every label -> value pair of a form page, by the rules in this module's docstring."""
    lh = _line_height(page)
    units = cells(page, lh)
    for cell in units:
        if cell.label is not None:
            _wrapped_label(cell, units, lh)
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
            _header_tops(heads, units, lh)
            out += [TableCell(**vars(_pair(head, span, page))) for head, span in _table(heads, units, lh)]
    for cell in units:
        if not cell.lone or not cell.box or cell.used:
            continue
        right = _right(cell, units)
        if right is not None and cell.checkbox and not right.colon and not right.checkbox:
            right.label, right.value = None, None
        if right is not None and right.label is None and not right.used:
            out.append(_pair(cell, _run_on(_rest_of_row(right, units, lh), cell, units, lh), page))
            continue
        if cell.ruled:
            continue
        under = _below(cell, units, lh, reach=REACH)
        if under is None or under.label is not None or under.used or _owner(under, units) is not cell:
            continue
        under.used = True
        value = _run_on(under.span, cell, units, lh, below_label=True)
        out.append(_pair(cell, value, page))
        if value is under.span:
            out += [_pair(cell, item.span, page) for item in _list_under(under, cell, units, lh)]
    return [p for p in out if p.value and re.search(r"[A-Za-z0-9]", p.value)]


def _list_under(first: Cell, label: Cell, units: list[Cell], lh: float, *, max_items: int = 12) -> list[Cell]:
    """A column of short one-line values under a label, a blank line apart ("ITEMS" / "BASEBALL CAP" /
    "WATER BOTTLES"): each line is one more value of the label, not the run-on of the first."""
    items, last = [], first
    while len(items) < max_items and _short_item(last):
        nxt = _below(last, units, lh, reach=2.0)
        if nxt is None or nxt.used or nxt.label is not None or not _short_item(nxt) \
                or abs(nxt.box[0] - last.box[0]) > 1.5 * lh or _anything_left_of(nxt, units) \
                or _owner(nxt, units) is not label or _has_figures(nxt) != _has_figures(first):
            break  # the items of a list are alike: all figures ("1500", "500") or all words
        nxt.used = True
        items.append(nxt)
        last = nxt
    return items


def _short_item(cell: Cell) -> bool:
    words, text = cell.span.words, cell.span.text
    return 0 < len(words) <= 4 and len(re.findall(r"[A-Za-z0-9]", text)) >= 3 and not text.rstrip().endswith((".", ",", ";"))


def _has_figures(cell: Cell) -> bool:
    return bool(re.search(r"\d", cell.span.text))


def _wrapped_label(cell: Cell, units: list[Cell], lh: float) -> None:
    """A label printed over two or three lines ("EFFECTIVENESS OF THE" / "DISTRIBUTION ALLOWANCE:"): the
    lines right above it in capitals, at its left edge, alone on their rows, are its first words."""
    for _ in range(2):
        box = cell.box
        above = [c for c in units if c.label is None and not c.used and c.box and c.box[3] <= box[1] + 0.3 * lh
                 and box[1] - c.box[3] < 0.8 * lh and abs(c.box[0] - box[0]) <= lh]
        if len(above) != 1:
            return
        top = above[0]
        text = top.span.text.strip(STRIP)
        if re.search(r"[a-z]{2}", text) or ":" in text or not re.search(r"[A-Z]{2}", text) \
                or sum(c.row == top.row for c in units) > 1:
            return
        top.used = True
        cell.label = f"{text} {cell.label}"
        cell.span = Span(cell.span.page, top.span.words + cell.span.words, confidence=cell.span.confidence)


def _rest_of_row(first: Cell, units: list[Cell], lh: float) -> Span:
    """A value to the right of its label, with the text after it on the row ("Nassau  107"), up to a
    label or a gap wider than three lines."""
    taken, last = [first], first
    first.used = True
    while (nxt := _right(last, units)) is not None and nxt.label is None and not nxt.used \
            and nxt.box[0] - last.box[2] <= 3 * lh:
        nxt.used = True
        taken.append(nxt)
        last = nxt
    if len(taken) == 1:
        return first.span
    return Span(first.span.page, [w for c in taken for w in c.span.words], confidence=first.span.confidence)


def _owner(value: Cell, units: list[Cell]) -> Cell | None:
    """The label nearest above a value that shares some of its width: the one it belongs to."""
    vb = value.box
    above = [c for c in units if c.label is not None and c.box and c.box[3] <= (vb[1] + vb[3]) / 2
             and min(c.box[2], vb[2]) - max(c.box[0], vb[0]) > 0]
    return max(above, key=lambda c: c.box[3]) if above else None


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


def _header_tops(heads: list[Cell], units: list[Cell], lh: float) -> None:
    """A header printed over two lines ("NO. OF" / "STORES", "IND/LOR" / "VOLUME"): a row of capitals
    right above the header, each at the left edge of a column label, is the first line of those labels."""
    top = min(h.box[1] for h in heads)
    above = [c for c in units if c.box and not c.used and c.label is None and c.box[3] <= top + 0.3 * lh
             and top - c.box[3] < 0.8 * lh and len(re.findall(r"[A-Za-z0-9]", c.span.text)) >= 3]
    matched = []
    for c in above:
        head = next((h for h in heads if abs(h.box[0] - c.box[0]) <= lh), None)
        text = c.span.text.strip(STRIP)
        if head is None or re.search(r"[a-z]", text) or any(m[1] is head for m in matched):
            return  # not a header's first line: text that is not over a column, or not in capitals
        matched.append((c, head, text))
    if len(matched) < 2:
        return
    for c, head, text in matched:
        c.used = True
        head.label = f"{text} {head.label}"


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
        # a row by its first cell's centre: OCR boxes of tight rows run tall and overlap the next row
        if rows and (_same_row(rows[-1][0].box, c.box) or _same_row(c.box, rows[-1][0].box)) \
                and abs(_centre(c.box) - _centre(rows[-1][0].box)) <= 0.5 * lh:
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
        if previous is not None and len(columns) == 1 and gap < 0.6 * lh and next(iter(columns)) in previous \
                and len(previous) > 1:  # a wrapped cell of a fuller row; a list of one-column rows stays rows
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


def _centre(box) -> float:
    return (box[1] + box[3]) / 2


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
    found = [c for c in units if c is not cell and c.box and c.box[0] >= box[2] - 2 and _same_row(box, c.box)
             and box[1] - (box[3] - box[1]) <= (c.box[1] + c.box[3]) / 2 <= box[3] + (box[3] - box[1])]
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
            if c.used or not cb or (cb[1] + cb[3]) - (last[1] + last[3]) < 0.6 * lh or cb[1] - last[3] > 0.8 * lh:
                continue  # a lower line (OCR boxes of tight lines overlap: centres a third of a line apart will do), no blank line between
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
    """The cell is not where a line of a value starts: something sits on its row to its left (stray
    marks OCR reads off rule lines, "." or "_", aside)."""
    return any(c is not cell and c.row == cell.row and c.box and c.box[2] <= cell.box[0] + 2
               and re.search(r"[A-Za-z0-9]", c.span.text) for c in units)
